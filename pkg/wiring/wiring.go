// Package wiring builds dbsync's components from a *config.Config: the
// checkpoint store, the message queue (with the embedded NATS server when no
// broker address is configured) and the source connection. It is the one
// place that knows which config section configures which implementation:
// adding a broker or a store is a file in pkg/mq or pkg/storage, one case
// here and a config section.
//
// Every error it returns names the component and carries the fix in the
// config's own terms (failure.Fix): the setting to change, the environment
// variable that overrides it.
package wiring

import (
	"context"
	"fmt"
	"io"

	"github.com/sirupsen/logrus"

	"github.com/dbsync/dbsync/pkg/binlog"
	"github.com/dbsync/dbsync/pkg/config"
	"github.com/dbsync/dbsync/pkg/storage"
)

// Components are the connected parts a producer runs on; the queue is
// opened separately (OpenQueue), once the producer's checks passed.
type Components struct {
	// Store holds the checkpoint, leased to the role Open was given.
	Store storage.PositionStorager
	// Source is the administrative connection to the source server, and
	// SourceConfig how to open more (the binlog stream, the monitor's).
	Source       *binlog.Source
	SourceConfig binlog.Config
	// Lease is the store's lease (see HoldStore): the producer stops at
	// once when it is lost. Close releases it.
	Lease storage.Lease
}

// Open connects the checkpoint store (and holds it for role: a redis lease;
// bolt's file lock needs none), then the source. On failure it closes what
// it opened and returns the first error.
func Open(ctx context.Context, cfg *config.Config, role string, log logrus.FieldLogger) (_ *Components, err error) {
	c := &Components{}
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	if c.Store, err = OpenStore(ctx, cfg, log); err != nil {
		return nil, err
	}
	if c.Lease, err = HoldStoreFor(ctx, c.Store, role, cfg.HA.LeaseTTL.Duration()); err != nil {
		return nil, err
	}
	if c.SourceConfig, err = SourceConfig(cfg); err != nil {
		return nil, err
	}
	if c.Source, err = connectSource(ctx, cfg, c.SourceConfig, log); err != nil {
		return nil, err
	}
	return c, nil
}

// Close closes the source and the store (giving back its lease); closing
// twice is harmless.
func (c *Components) Close() error {
	if c.Source != nil {
		c.Source.Close()
		c.Source = nil
	}
	if c.Lease != nil {
		c.Lease.Release()
		c.Lease = nil
	}
	if c.Store == nil {
		return nil
	}
	err := c.Store.Close()
	c.Store = nil
	if err != nil {
		return fmt.Errorf("close the checkpoint store: %w", err)
	}
	return nil
}

// orDiscard returns log, or a logger that discards everything when log is
// nil.
func orDiscard(log logrus.FieldLogger) logrus.FieldLogger {
	if log != nil {
		return log
	}
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}
