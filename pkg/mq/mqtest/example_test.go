package mqtest_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/dbsync/dbsync/pkg/mq"
	"github.com/dbsync/dbsync/pkg/mq/mqtest"
)

// A Recorder stands in for a broker in tests: it keeps what it stored and
// fails on demand.
func ExampleRecorder() {
	q := mqtest.NewRecorder()
	ctx := context.Background()
	q.FailAfter(1, mq.ErrConnectionLost) // the 2nd message from now fails
	err := q.Publish(ctx, mqtest.Messages("tx1", 3, []string{"app.shop.orders"}, 20))
	fmt.Println(errors.Is(err, mq.ErrConnectionLost), len(q.Messages()))
	err = q.Publish(ctx, mqtest.Messages("tx1", 3, []string{"app.shop.orders"}, 20)) // the replay
	fmt.Println(err, len(q.Messages()))
	// Output:
	// true 1
	// <nil> 4
}
