package config

import (
	"reflect"
	"strings"
)

// EnvOverride is one environment variable that replaces a setting: Name is
// the variable (e.g. "DBSYNC_MYSQL_PASSWORD"), Key the setting's path
// (e.g. "Mysql.Password").
type EnvOverride struct {
	Name string
	Key  string
}

// EnvOverrides returns, in a fresh slice, every environment variable that
// overrides a setting. A variable that is set, even to "", replaces the
// file's value after the file is read and before validation; an empty
// value then means the setting's default where it has one.
func EnvOverrides() []EnvOverride {
	return []EnvOverride{
		{"DBSYNC_MYSQL_HOST", "Mysql.Host"},
		{"DBSYNC_MYSQL_PORT", "Mysql.Port"},
		{"DBSYNC_MYSQL_USERNAME", "Mysql.Username"},
		{"DBSYNC_MYSQL_PASSWORD", "Mysql.Password"},
		{"DBSYNC_MYSQL_PASSWORD_FILE", "Mysql.PasswordFile"},
		{"DBSYNC_MYSQL_TLS_MODE", "Mysql.TLS.Mode"},
		{"DBSYNC_REDIS_HOST", "Redis.Host"},
		{"DBSYNC_REDIS_PORT", "Redis.Port"},
		{"DBSYNC_REDIS_USERNAME", "Redis.Username"},
		{"DBSYNC_REDIS_PASSWORD", "Redis.Password"},
		{"DBSYNC_REDIS_PASSWORD_FILE", "Redis.PasswordFile"},
		{"DBSYNC_STAN_HOST", "Stan.Host"},
		{"DBSYNC_STAN_PORT", "Stan.Port"},
		{"DBSYNC_STAN_CLUSTER_ID", "Stan.ClusterID"},
		{"DBSYNC_STAN_CLIENT_ID", "Stan.ClientID"},
		{"DBSYNC_STAN_USER", "Stan.Auth.User"},
		{"DBSYNC_STAN_PASSWORD", "Stan.Auth.Password"},
		{"DBSYNC_STAN_PASSWORD_FILE", "Stan.Auth.PasswordFile"},
		{"DBSYNC_STAN_TOKEN", "Stan.Auth.Token"},
		{"DBSYNC_STAN_TOKEN_FILE", "Stan.Auth.TokenFile"},
		{"DBSYNC_STAN_NKEY_SEED_FILE", "Stan.Auth.NKeySeedFile"},
		{"DBSYNC_STAN_CREDS_FILE", "Stan.Auth.CredsFile"},
		{"DBSYNC_JETSTREAM_URL", "JetStream.URL"},
		{"DBSYNC_JETSTREAM_USER", "JetStream.Auth.User"},
		{"DBSYNC_JETSTREAM_PASSWORD", "JetStream.Auth.Password"},
		{"DBSYNC_JETSTREAM_PASSWORD_FILE", "JetStream.Auth.PasswordFile"},
		{"DBSYNC_JETSTREAM_TOKEN", "JetStream.Auth.Token"},
		{"DBSYNC_JETSTREAM_TOKEN_FILE", "JetStream.Auth.TokenFile"},
		{"DBSYNC_JETSTREAM_NKEY_SEED_FILE", "JetStream.Auth.NKeySeedFile"},
		{"DBSYNC_JETSTREAM_CREDS_FILE", "JetStream.Auth.CredsFile"},
		{"DBSYNC_HTTP_LISTEN", "HTTP.Listen"},
		{"DBSYNC_LOG_LEVEL", "Log.Level"},
		{"DBSYNC_DATA_DIR", "DataDir"},
	}
}

// applyEnv sets every overridden setting whose variable lookup finds, and
// returns the applied ones as key path -> variable name.
func (c *Config) applyEnv(lookup func(string) (string, bool)) map[string]string {
	applied := map[string]string{}
	if lookup == nil {
		return applied
	}
	for _, o := range EnvOverrides() {
		val, ok := lookup(o.Name)
		if !ok {
			continue
		}
		f := fieldByPath(reflect.ValueOf(c).Elem(), o.Key)
		// Every override targets a string-kinded field (string or Port);
		// TestEnvOverridesTargetStringFields pins that.
		f.SetString(val)
		applied[o.Key] = o.Name
	}
	return applied
}

// fieldByPath returns the field of struct v named by a dotted path such as
// "Mysql.Host"; it panics on a path that does not exist (a programming
// error caught by the tests).
func fieldByPath(v reflect.Value, path string) reflect.Value {
	for _, name := range strings.Split(path, ".") {
		v = v.FieldByName(name)
	}
	return v
}
