package mq

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/dbsync/dbsync/pkg/failure"
	"github.com/dbsync/dbsync/test/testenv"
)

// TestJetStreamFullStreamRefuses: a stream at its MaxBytes refuses new
// messages with ErrStreamFull and a fix, keeps every message it had (discard
// new), is reported by RetentionWarning, and takes messages again once its
// limit is raised.
func TestJetStreamFullStreamRefuses(t *testing.T) {
	srv := testenv.StartNATS(t)
	j := newTestJetStream(t, srv, func(o *JetStreamOptions) { o.MaxBytes = 16 << 10 })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	msgs := makeMsgs("f", 200, []string{"app.shop.orders"}, 200) // about 40 KB
	err := j.Publish(ctx, msgs)
	if !errors.Is(err, ErrStreamFull) || failure.IsPermanent(err) || !strings.Contains(failure.Fix(err), "max bytes") {
		t.Fatalf("Publish into a full stream: %v (fix %q); want a retryable ErrStreamFull with a fix", err, failure.Fix(err))
	}
	info := jsStreamInfo(t, srv, jsTestStream)
	if n := int(info.State.Msgs); n == 0 || n >= len(msgs) {
		t.Fatalf("the full stream holds %d of %d messages", n, len(msgs))
	}
	checkPrefix(t, srv, []string{"app.shop.orders"}, msgs, int(info.State.Msgs)) // the oldest kept, none dropped
	if w := RetentionWarning(info); !strings.Contains(w, "max bytes") {
		t.Errorf("RetentionWarning of a full stream = %q", w)
	}

	// Raise the limit: the rest goes in after what the stream holds.
	cfg := info.Config
	cfg.MaxBytes = 1 << 20
	if _, err := jsClient(t, srv).UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	held := int(info.State.Msgs)
	if err := j.Publish(ctx, msgs[held:]); err != nil {
		t.Fatalf("Publish after raising the limit: %v", err)
	}
	checkPrefix(t, srv, []string{"app.shop.orders"}, msgs, len(msgs))
}

// TestRetentionWarning covers the retention settings that lose changes or
// fill the broker's volume.
func TestRetentionWarning(t *testing.T) {
	for name, tc := range map[string]struct {
		cfg   jetstream.StreamConfig
		bytes uint64
		want  string
	}{
		"bounded by age":        {cfg: jetstream.StreamConfig{Name: "S", MaxAge: time.Hour, MaxBytes: -1, MaxMsgs: -1, Discard: jetstream.DiscardNew}},
		"kept forever":          {cfg: jetstream.StreamConfig{Name: "S", MaxBytes: -1, MaxMsgs: -1}, want: "forever"},
		"drops when full":       {cfg: jetstream.StreamConfig{Name: "S", MaxBytes: 100, MaxMsgs: -1, Discard: jetstream.DiscardOld}, want: "discard old"},
		"near its bound":        {cfg: jetstream.StreamConfig{Name: "S", MaxBytes: 100, MaxMsgs: -1, Discard: jetstream.DiscardNew}, bytes: 85, want: "85 of its 100 bytes"},
		"well within its bound": {cfg: jetstream.StreamConfig{Name: "S", MaxBytes: 100, MaxMsgs: -1, Discard: jetstream.DiscardNew}, bytes: 10},
	} {
		got := RetentionWarning(&jetstream.StreamInfo{Config: tc.cfg, State: jetstream.StreamState{Bytes: tc.bytes}})
		if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("%s: %q, want %q", name, got, tc.want)
		}
	}
}
