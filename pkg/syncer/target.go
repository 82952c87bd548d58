package syncer

import (
	"context"
	"fmt"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/dbsync/dbsync/pkg/sink"
	"github.com/dbsync/dbsync/pkg/sink/pgsink"
	"github.com/dbsync/dbsync/pkg/sink/redissink"
)

// openTarget connects to the configured target.
func openTarget(ctx context.Context, cfg *Config, log logrus.FieldLogger) (sink.Sink, error) {
	switch cfg.Target {
	case TargetRedis:
		r := cfg.Redis
		s, err := redissink.New(ctx, redissink.Config{Addr: r.Addr, Username: r.Username, Password: r.Password, DB: r.DB,
			KeyPattern: r.KeyPattern, Fields: r.Fields, TTL: time.Duration(r.TTL), TombstoneTTL: time.Duration(r.TombstoneTTL),
			Log: log.WithField("target", "redis")})
		if err != nil {
			return nil, fmt.Errorf("Redis target: %w", err)
		}
		return s, nil
	case TargetPostgres:
		s, err := pgsink.New(ctx, pgsink.Config{DSN: cfg.Postgres.DSN, Schema: cfg.Postgres.Schema, Log: log.WithField("target", "postgres")})
		if err != nil {
			return nil, fmt.Errorf("PostgreSQL target: %w", err)
		}
		return s, nil
	}
	return nil, fmt.Errorf("Target %q: want redis or postgres", cfg.Target)
}
