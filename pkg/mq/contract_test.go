package mq_test

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dbsync/dbsync/pkg/mq"
	"github.com/dbsync/dbsync/pkg/mq/mqtest"
	"github.com/dbsync/dbsync/test/testenv"
)

var contractClients atomic.Int64

func TestStanKeepsTheContract(t *testing.T) {
	srv := testenv.StartStan(t)
	mqtest.Run(t, func(t *testing.T) mqtest.Broker {
		// One channel prefix per check: they share the server.
		prefix := "c" + strconv.FormatInt(contractClients.Add(1), 10)
		q, err := mq.NewStan(mq.StanOptions{URL: srv.URL(), ClusterID: srv.ClusterID, ClientID: "contract-" + prefix}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return mqtest.Broker{
			Queue:   q,
			Subject: func(name string) string { return prefix + ".db." + name },
			Stored:  func(t *testing.T, subject string) [][]byte { return srv.ReadChannel(t, subject) },
		}
	})
}

func TestJetStreamKeepsTheContract(t *testing.T) {
	srv := testenv.StartNATS(t)
	mqtest.Run(t, func(t *testing.T) mqtest.Broker {
		// One stream per check: they share the server.
		n := strconv.FormatInt(contractClients.Add(1), 10)
		stream, prefix := "CONTRACT"+n, "c"+n
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		q, err := mq.NewJetStream(ctx, mq.JetStreamOptions{URL: srv.URL(), Stream: stream, Subjects: []string{prefix + ".*.*"}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return mqtest.Broker{
			Queue:   q,
			Subject: func(name string) string { return prefix + ".db." + name },
			Stored:  func(t *testing.T, subject string) [][]byte { return srv.ReadSubject(t, stream, subject) },
		}
	})
}
