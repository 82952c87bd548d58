package binlog

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/dbsync/dbsync/pkg/failure"
	"github.com/dbsync/dbsync/test/testenv"
)

// TestCheckResumableDetectsResetMaster: after RESET MASTER and new writes,
// the checkpoint's file and offset exist again but hold another history;
// CheckResumable refuses it instead of resuming at a look-alike position,
// while a checkpoint of the current history passes.
func TestCheckResumableDetectsResetMaster(t *testing.T) {
	t.Parallel()
	db := testenv.StartMariaDB(t, testenv.MariaDBOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, src, _ := connectTest(ctx, t, db)
	db.Exec(t, "CREATE DATABASE h", "CREATE TABLE h.t (id INT PRIMARY KEY, pad VARCHAR(200))")
	for i := 0; i < 20; i++ {
		db.Exec(t, "INSERT INTO h.t VALUES ("+itoa(uint32(i))+", REPEAT('x', 200))")
	}
	cp, err := src.CurrentPosition(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := src.CheckResumable(t.Context(), cp); err != nil {
		t.Fatalf("the current position of the same history was refused: %v", err)
	}
	db.Exec(t, "RESET MASTER", "CREATE TABLE h.u (id INT PRIMARY KEY, pad VARCHAR(200))")
	for i := 0; i < 40; i++ {
		db.Exec(t, "INSERT INTO h.u VALUES ("+itoa(uint32(i))+", REPEAT('y', 200))")
	}
	now, err := src.CurrentPosition(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if now.File != cp.File || now.Pos <= cp.Pos {
		t.Fatalf("setup: want the old position %s to exist again, server is at %s", cp, now)
	}
	err = src.CheckResumable(t.Context(), cp)
	var he *HistoryError
	if !errors.As(err, &he) || !failure.IsPermanent(err) || !strings.Contains(err.Error(), "RESET MASTER") {
		t.Fatalf("a checkpoint from before RESET MASTER: %v", err)
	}
	if err := src.CheckResumable(t.Context(), now); err != nil {
		t.Fatalf("the new history's position was refused: %v", err)
	}
}
