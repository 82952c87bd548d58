package mq_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/dbsync/dbsync/internal/natsembed"
	"github.com/dbsync/dbsync/pkg/mq"
)

// A JetStream queue creates its stream on first use and publishes batches
// in order; Publish returns once the broker acknowledged every message.
func ExampleNewJetStream() {
	dir, _ := os.MkdirTemp("", "dbsync-example")
	defer os.RemoveAll(dir)
	srv, err := natsembed.Start(natsembed.Options{Host: "127.0.0.1", Port: -1, StoreDir: dir})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Shutdown()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	q, err := mq.NewJetStream(ctx, mq.JetStreamOptions{URL: srv.URL(), Stream: "DBSYNC", Subjects: []string{"dbsync.*.*"}}, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer q.Close()

	err = q.Publish(ctx, []mq.Message{
		{Subject: "dbsync.shop.orders", ID: "mysql-bin.000001:120:0", Data: []byte(`{"id":1}`)},
		{Subject: "dbsync.shop.orders", ID: "mysql-bin.000001:120:1", Data: []byte(`{"id":2}`)},
	})
	fmt.Println("published:", err)
	last, found, _ := q.LastMessage(ctx)
	fmt.Println("the stream's newest:", found, last.ID, string(last.Data))
	// Output:
	// published: <nil>
	// the stream's newest: true mysql-bin.000001:120:1 {"id":2}
}
