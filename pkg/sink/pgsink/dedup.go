package pgsink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/dbsync/dbsync/pkg/client"
)

// Dedup returns the progress store Apply writes to: the rows of
// SyncSchema.progress (key = the SDK's subject key, progress = the JSON of
// client.Progress). Its Close does nothing (Close the Sink).
func (s *Sink) Dedup() client.DedupStore { return progressStore{s} }

type progressStore struct{ s *Sink }

var _ client.DedupStore = progressStore{}

// Load implements client.DedupStore: ok is false when no progress is
// stored under subject. It fails naming the table when PostgreSQL does, or
// when the stored progress does not decode (with the fix: delete the row).
func (d progressStore) Load(ctx context.Context, subject string) (client.Progress, bool, error) {
	var raw []byte
	err := d.s.pool.QueryRow(ctx, "SELECT progress::text FROM "+d.s.progress+" WHERE key = $1", subject).Scan(&raw)
	if errors.Is(err, pgx.ErrNoRows) {
		return client.Progress{}, false, nil
	}
	if err != nil {
		return client.Progress{}, false, d.s.secrets.Error(fmt.Errorf("%s: load the progress of %s from %s: %w", d.s.where, subject, d.s.progress, err))
	}
	var p client.Progress
	if err := json.Unmarshal(raw, &p); err != nil {
		return client.Progress{}, false, fmt.Errorf("%s: the progress of %s in %s does not decode (%w); delete its row to sync the subject from the consumer's start position",
			d.s.where, subject, d.s.progress, err)
	}
	return p, true, nil
}

// Save implements client.DedupStore (an upsert of subject's row).
func (d progressStore) Save(ctx context.Context, subject string, p client.Progress) error {
	raw, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("pg sink: encode the progress of %s: %w", subject, err)
	}
	_, err = d.s.pool.Exec(ctx, "INSERT INTO "+d.s.progress+` (key, progress, updated_at) VALUES ($1::text, $2::jsonb, now())
		ON CONFLICT (key) DO UPDATE SET progress = EXCLUDED.progress, updated_at = EXCLUDED.updated_at`, subject, string(raw))
	if err != nil {
		return d.s.secrets.Error(fmt.Errorf("%s: save the progress of %s in %s: %w", d.s.where, subject, d.s.progress, err))
	}
	return nil
}

// Close implements client.DedupStore.
func (progressStore) Close() error { return nil }
