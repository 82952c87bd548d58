package mqtest_test

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/dbsync/dbsync/pkg/mq"
	"github.com/dbsync/dbsync/pkg/mq/mqtest"
)

func TestRecorderKeepsTheContract(t *testing.T) {
	mqtest.Run(t, func(t *testing.T) mqtest.Broker {
		r := mqtest.NewRecorder()
		return mqtest.Broker{
			Queue:   r,
			Subject: func(name string) string { return "app.db." + name },
			Stored:  func(_ *testing.T, subject string) [][]byte { return r.Stored(subject) },
		}
	})
}

// TestRecorderFailAfter: the armed message is refused, nothing behind it is
// stored until Resume, then the queue stores again.
func TestRecorderFailAfter(t *testing.T) {
	r := mqtest.NewRecorder()
	ctx := context.Background()
	r.FailAfter(3, io.ErrUnexpectedEOF)
	first, err := r.Send(ctx, mqtest.Messages("a", 5, []string{"s"}, 10))
	if err != nil {
		t.Fatal(err)
	}
	second, err := r.Send(ctx, mqtest.Messages("b", 2, []string{"s"}, 10))
	if err != nil {
		t.Fatal(err)
	}
	if err := second.Wait(ctx); !errors.Is(err, mq.ErrChainBroken) {
		t.Fatalf("batch sent behind the refused message: %v, want mq.ErrChainBroken", err)
	}
	var perr *mq.PublishError
	if err := first.Wait(ctx); !errors.As(err, &perr) || perr.ID != "a-3" || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("batch with the refused message: %v, want a PublishError for a-3", err)
	}
	if got := len(r.Messages()); got != 3 {
		t.Fatalf("%d messages stored, want the 3 before the refused one", got)
	}
	if p, err := r.Send(ctx, mqtest.Messages("c", 2, []string{"s"}, 10)); err != nil || !errors.Is(p.Wait(ctx), mq.ErrChainBroken) {
		t.Fatal("a Send after the failure, before Resume, was stored")
	}
	r.Resume()
	if err := r.Publish(ctx, mqtest.Messages("d", 2, []string{"s"}, 10)); err != nil {
		t.Fatalf("Publish after Resume: %v", err)
	}
}

// TestRecorderHold: a held Wait returns when released, or with ErrClosed
// when the queue closes.
func TestRecorderHold(t *testing.T) {
	r := mqtest.NewRecorder()
	release := r.Hold()
	done := make(chan error, 1)
	go func() { done <- r.Publish(context.Background(), mqtest.Messages("h", 1, []string{"s"}, 10)) }()
	select {
	case err := <-done:
		t.Fatalf("a held Publish returned %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	release()
	if err := <-done; err != nil {
		t.Fatalf("released Publish: %v", err)
	}
	r.Hold()
	go func() { done <- r.Publish(context.Background(), mqtest.Messages("i", 1, []string{"s"}, 10)) }()
	time.Sleep(20 * time.Millisecond)
	_ = r.Close()
	if err := <-done; !errors.Is(err, mq.ErrClosed) {
		t.Fatalf("held Publish at Close: %v, want mq.ErrClosed", err)
	}
}
