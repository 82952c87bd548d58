// Package config loads, defaults, overrides and validates dbsync's JSON
// configuration file.
//
// The format is dbsync 1's config.json (Mysql, Storage, Bolt, Redis, MQName,
// Stan, Version, ProName) plus keys that all have defaults, so a dbsync 1
// file loads unchanged and means what it meant. Ports may be JSON strings ("3306") or numbers (3306); durations are
// strings ("3s", "250ms") or numbers of milliseconds.
//
// Loading is strict: keys are matched case-insensitively like encoding/json,
// but an unknown key is an error (with a "did you mean" hint), a value of the
// wrong type is an error naming its key, and validation reports every problem
// at once, each prefixed by its key path (e.g. "Mysql.Port"). Environment
// variables listed by EnvOverrides replace addresses and secrets after the
// file is read and before validation, for Kubernetes Secrets.
package config
