package client_test

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"time"

	stand "github.com/nats-io/nats-streaming-server/server"
	"github.com/nats-io/stan.go"

	"github.com/dbsync/dbsync/pkg/client"
)

// Order is a consumer's own model of the shop.orders table.
type Order struct {
	ID     int64     `db:"id"`
	Status string    `db:"status"`
	Total  string    `db:"total"` // DECIMAL keeps its exact digits
	PaidAt time.Time `db:"paid_at"`
}

// OrderRow is a gorm-style model that names its table.
type OrderRow struct {
	ID     int64
	Status string
}

// TableName names the table, as for gorm.
func (OrderRow) TableName() string { return "shop.orders" }

// orderUpdate is what dbsync publishes for
// UPDATE shop.orders SET status='paid', paid_at=... WHERE id=7.
const orderUpdate = `{"v":1,"id":"mysql-bin.000002:4211:0",
 "source":{"name":"main","server_id":1,"file":"mysql-bin.000002","pos":4211,"row":0,"gtid":"0-1-42","ts":"2026-11-21T19:00:00Z"},
 "db":"shop","table":"orders","type":"update","pk":["id"],
 "before":{"id":7,"status":"new","total":"12.50","paid_at":null},
 "after":{"id":7,"status":"paid","total":"12.50","paid_at":"2026-11-21T19:00:00.250000"}}`

// Subscribe delivers each change of a table as a Change of the caller's
// struct, in order, acknowledging it only when the handler returns nil.
func ExampleSubscribe() {
	url, stop := startExampleBroker()
	defer stop()

	c, err := client.NewClient(client.Config{ClusterID: "example", ClientID: "billing", Host: url})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()

	done := make(chan struct{})
	_, err = client.Subscribe(c, "shop", "orders", func(ctx context.Context, ch client.Change[Order]) error {
		fmt.Printf("%s order %d: %s -> %s, total %s, paid at %s\n",
			ch.Type, ch.After.ID, ch.Before.Status, ch.After.Status, ch.After.Total, ch.After.PaidAt.Format(time.RFC3339Nano))
		close(done)
		return nil
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	publishExample(url, "shop.orders", orderUpdate) // what the producer does
	<-done
	// Output:
	// update order 7: new -> paid, total 12.50, paid at 2026-11-21T19:00:00.25Z
}

// Register is dbsync 1's callback API: the handler gets each raw message of
// the table the model maps to and decodes it with Build.
func ExampleClient_Register() {
	url, stop := startExampleBroker()
	defer stop()

	c, err := client.NewClient(client.Config{ClusterID: "example", ClientID: "audit", Host: url})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()

	done := make(chan struct{})
	err = c.Register(OrderRow{}, func(msg []byte) error {
		var before, after OrderRow
		if err := client.Build(&before, &after, msg); err != nil {
			return err
		}
		fmt.Printf("order %d: %s -> %s\n", after.ID, before.Status, after.Status)
		close(done)
		return nil
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	publishExample(url, "shop.orders", orderUpdate) // what the producer does
	<-done
	// Output:
	// order 7: new -> paid
}

// Decode turns one message into a Change without a broker, for tests or
// other transports.
func ExampleDecode() {
	ch, err := client.Decode[Order]([]byte(orderUpdate), client.DecodeOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(ch.Type, ch.DB+"."+ch.Table, ch.Source.File, ch.Source.Pos, ch.Before.Status, ch.After.Status)
	// Output:
	// update shop.orders mysql-bin.000002 4211 new paid
}

// Build is the original dbsync API, kept for existing consumers.
func ExampleBuild() {
	var before, after Order
	if err := client.Build(&before, &after, []byte(orderUpdate)); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(before.Status, "->", after.Status)
	// Output:
	// new -> paid
}

// startExampleBroker runs an in-memory NATS Streaming server on a free
// loopback port.
func startExampleBroker() (url string, stop func()) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	sOpts := stand.GetDefaultOptions()
	sOpts.ID = "example"
	nOpts := stand.NewNATSOptions()
	nOpts.Host, nOpts.Port, nOpts.NoLog, nOpts.NoSigs = "127.0.0.1", port, true, true
	srv, err := stand.RunServerWithOpts(sOpts, nOpts)
	if err != nil {
		panic(err)
	}
	return "nats://127.0.0.1:" + strconv.Itoa(port), srv.Shutdown
}

func publishExample(url, subject, msg string) {
	sc, err := stan.Connect("example", "example-producer", stan.NatsURL(url))
	if err != nil {
		panic(err)
	}
	defer sc.Close()
	if err := sc.Publish(subject, []byte(msg)); err != nil {
		panic(err)
	}
}
