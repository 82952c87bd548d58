package wiring

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nats-io/stan.go"
	"github.com/sirupsen/logrus"

	"github.com/dbsync/dbsync/internal/natsembed"
	"github.com/dbsync/dbsync/pkg/config"
	"github.com/dbsync/dbsync/pkg/failure"
	"github.com/dbsync/dbsync/pkg/mq"
	"github.com/dbsync/dbsync/pkg/redact"
)

// probeTimeout bounds each connection attempt of ProbeBroker.
const probeTimeout = 5 * time.Second

// OpenQueue connects the broker MQName names: NATS Streaming ("stan"),
// NATS JetStream ("jetstream") or Kafka ("kafka"). With JetStream and no JetStream.URL it first
// starts an embedded NATS server with JetStream on JetStream.Listen, storing
// under DataDir/nats; closing the queue stops it.
func OpenQueue(ctx context.Context, cfg *config.Config, log logrus.FieldLogger) (mq.MessageQueue, error) {
	log = orDiscard(log)
	if cfg.MQName == "kafka" {
		return openKafka(ctx, cfg, log)
	}
	if cfg.MQName != "jetstream" {
		opts, err := stanOptions(cfg)
		if err != nil {
			return nil, err
		}
		q, err := mq.NewStan(opts, log)
		if err != nil {
			return nil, stanFix(cfg, err)
		}
		return q, nil
	}
	if cfg.JetStream.URL != "" {
		opts, err := jetStreamOptions(cfg, cfg.JetStream.URL)
		if err != nil {
			return nil, err
		}
		q, err := mq.NewJetStream(ctx, opts, log)
		if err != nil {
			return nil, jetStreamFix(cfg, err)
		}
		return q, nil
	}
	srv, err := startEmbeddedNATS(cfg)
	if err != nil {
		return nil, err
	}
	log.WithFields(logrus.Fields{"url": srv.URL(), "store": embeddedStoreDir(cfg), "auth": authKind(cfg.JetStream.Auth)}).Warn(
		"no JetStream.URL configured: started an EMBEDDED NATS server with JetStream inside the producer; consumers connect to it like to any NATS server")
	if cfg.JetStream.TLS.Effective(false) != config.TLSDisabled {
		log.Warn("JetStream.TLS is ignored: it secures the connection to an external server (JetStream.URL); the embedded server has no certificate and listens without TLS")
	}
	plain := *cfg // the embedded server has no certificate: JetStream.TLS is for an external one
	plain.JetStream.TLS = config.TLS{}
	opts, err := jetStreamOptions(&plain, srv.URL())
	if err == nil {
		var q *mq.JetStream
		if q, err = mq.NewJetStream(ctx, opts, log); err == nil {
			return embeddedQueue{JetStream: q, server: srv}, nil
		}
		err = natsAuthFix("JetStream.Auth", cfg.JetStream.Auth, err)
	}
	srv.Shutdown()
	return nil, err
}

// authKind names the authentication a configures, "none" when none.
func authKind(a config.NATSAuth) string {
	if k := a.Kind(); k != "" {
		return k
	}
	return "none"
}

// embeddedQueue is a JetStream queue on the NATS server the process runs
// itself; closing it stops the server.
type embeddedQueue struct {
	*mq.JetStream
	server *natsembed.Server
}

func (q embeddedQueue) Close() error {
	err := q.JetStream.Close()
	q.server.Shutdown()
	return err
}

// stanOptions maps the Stan section to the publisher's options, Stan.Auth
// and Stan.TLS included. A TLS file that cannot be loaded is an error
// naming the setting.
func stanOptions(cfg *config.Config) (mq.StanOptions, error) {
	url := cfg.StanURL()
	tlsConfig, err := natsTLS("Stan.TLS", cfg.Stan.TLS, url)
	if err != nil {
		return mq.StanOptions{}, err
	}
	return mq.StanOptions{
		URL:         url,
		ClusterID:   cfg.Stan.ClusterID,
		ClientID:    cfg.Stan.ClientID,
		MaxInflight: cfg.Stan.MaxInflight,
		AckTimeout:  cfg.Stan.AckTimeout.Duration(),
		Auth:        natsAuth(cfg.Stan.Auth),
		TLS:         tlsConfig,
	}, nil
}

// jetStreamOptions maps the JetStream section to the publisher's options
// for the server at url, JetStream.Auth and JetStream.TLS included. A TLS
// file that cannot be loaded is an error naming the setting.
func jetStreamOptions(cfg *config.Config, url string) (mq.JetStreamOptions, error) {
	tlsConfig, err := natsTLS("JetStream.TLS", cfg.JetStream.TLS, url)
	if err != nil {
		return mq.JetStreamOptions{}, err
	}
	return mq.JetStreamOptions{
		URL:             url,
		Stream:          cfg.JetStream.Stream,
		Subjects:        cfg.StreamSubjects(),
		Storage:         cfg.JetStream.Storage,
		Replicas:        cfg.JetStream.Replicas,
		DuplicateWindow: cfg.JetStream.DuplicateWindow.Duration(),
		MaxInflight:     cfg.JetStream.MaxInflight,
		AckTimeout:      cfg.JetStream.AckTimeout.Duration(),
		MaxAge:          cfg.JetStream.MaxAge.Duration(),
		MaxBytes:        cfg.JetStream.MaxBytes,
		Auth:            natsAuth(cfg.JetStream.Auth),
		TLS:             tlsConfig,
	}, nil
}

// stanFix attaches the settings to check to a failed NATS Streaming
// connection.
func stanFix(cfg *config.Config, err error) error {
	switch {
	case errors.Is(err, mq.ErrUnauthorized):
		return natsAuthFix("Stan.Auth", cfg.Stan.Auth, err)
	case errors.Is(err, stan.ErrConnectReqTimeout):
		return failure.WithFix(err, fmt.Sprintf("set Stan.ClusterID (DBSYNC_STAN_CLUSTER_ID) to the streaming server's cluster id (its -cid); %q got no answer", cfg.Stan.ClusterID))
	case errors.Is(err, mq.ErrUnreachable):
		return failure.WithFix(err, "start NATS Streaming there, or fix Stan.Host and Stan.Port (DBSYNC_STAN_HOST, DBSYNC_STAN_PORT)")
	case failure.Fix(err) != "":
		return err // the broker's own words (a client id in use, ...)
	}
	return failure.WithFix(err, fmt.Sprintf("check that a NATS Streaming server (not a plain NATS server) runs there with cluster id %q, "+
		"or set Stan.ClusterID (DBSYNC_STAN_CLUSTER_ID) to its -cid", cfg.Stan.ClusterID))
}

// jetStreamFix attaches the settings to check to a failed connection to an
// external NATS server.
func jetStreamFix(cfg *config.Config, err error) error {
	switch {
	case errors.Is(err, mq.ErrUnauthorized):
		return natsAuthFix("JetStream.Auth", cfg.JetStream.Auth, err)
	case errors.Is(err, mq.ErrUnreachable):
		return failure.WithFix(err, "start the NATS server there, or fix JetStream.URL (DBSYNC_JETSTREAM_URL); leave it empty to run the embedded broker")
	case errors.Is(err, mq.ErrNoJetStream):
		return failure.WithFix(err, "enable JetStream on the NATS server (nats-server -js, or a jetstream block in its config) and for the account dbsync uses")
	}
	return err
}

func embeddedStoreDir(cfg *config.Config) string {
	return filepath.Join(cfg.DataDir, "nats")
}

// startEmbeddedNATS runs the embedded broker on JetStream.Listen.
func startEmbeddedNATS(cfg *config.Config) (*natsembed.Server, error) {
	host, portStr, err := net.SplitHostPort(cfg.JetStream.Listen)
	if err == nil {
		_, err = strconv.Atoi(portStr)
	}
	if err != nil {
		return nil, failure.WithFix(fmt.Errorf("JetStream.Listen %q: %w", cfg.JetStream.Listen, err), "set JetStream.Listen to host:port, e.g. 127.0.0.1:4222")
	}
	port, _ := strconv.Atoi(portStr)
	auth, err := embeddedAuth(cfg.JetStream.Auth)
	if err != nil {
		return nil, err
	}
	srv, err := natsembed.Start(natsembed.Options{Host: host, Port: port, StoreDir: embeddedStoreDir(cfg), Name: "dbsync-embedded",
		MaxPayload: int32(cfg.JetStream.MaxPayload), MaxStore: embeddedMaxStore(cfg), Auth: auth})
	if err != nil {
		return nil, failure.WithFix(err, "set JetStream.Listen to a free address, or JetStream.URL to use an external NATS server")
	}
	return srv, nil
}

// embeddedMaxStore is the embedded server's storage bound: JetStream.MaxStore,
// or half the free space of DataDir's filesystem (the checkpoint file
// shares it), or 0 (NATS' default) when that cannot be read.
func embeddedMaxStore(cfg *config.Config) int64 {
	if cfg.JetStream.MaxStore > 0 {
		return cfg.JetStream.MaxStore
	}
	dir := cfg.DataDir
	if dir == "" {
		dir = "."
	}
	return freeBytes(dir) / 2
}

// BrokerProbe is what ProbeBroker found about a broker that can be used.
type BrokerProbe struct {
	// Detail says what was found.
	Detail string
	// Warning, when set, is what should be looked at (part of the broker
	// could not be checked, or the stream's retention loses changes or
	// fills the disk), and Fix what to do about it.
	Warning string
	Fix     string
}

// ProbeBroker checks, creating nothing, that the configured broker can be
// used: it connects to NATS Streaming, or to the external JetStream server
// and inspects the stream (an embedded broker is started by the producer
// itself and is not probed). An unusable broker is an error carrying its
// fix.
func ProbeBroker(ctx context.Context, cfg *config.Config) (BrokerProbe, error) {
	if cfg.MQName == "kafka" {
		return probeKafka(ctx, cfg)
	}
	if cfg.MQName != "jetstream" {
		opts, err := stanOptions(cfg)
		if err != nil {
			return BrokerProbe{}, err
		}
		url := opts.URL
		// A client id of its own: the producer's may be in use by a running producer.
		opts.ClientID = fmt.Sprintf("%s-doctor-%d", cfg.Stan.ClientID, os.Getpid())
		opts.ConnectTimeout = probeTimeout
		if err := mq.ProbeStan(opts); err != nil {
			return BrokerProbe{}, stanFix(cfg, err)
		}
		return BrokerProbe{Detail: fmt.Sprintf("NATS Streaming at %s, cluster %q", redact.URL(url), cfg.Stan.ClusterID)}, nil
	}
	if cfg.JetStream.URL == "" {
		dir := cfg.DataDir
		if dir == "" {
			dir = "."
		}
		return BrokerProbe{Detail: fmt.Sprintf("embedded broker (started by the producer on %s, data in %s/nats, at most %d bytes)",
			cfg.JetStream.Listen, dir, embeddedMaxStore(cfg))}, nil
	}
	opts, err := jetStreamOptions(cfg, cfg.JetStream.URL)
	if err != nil {
		return BrokerProbe{}, err
	}
	opts.ConnectTimeout = probeTimeout
	report, err := mq.InspectJetStream(ctx, opts)
	if err != nil {
		return BrokerProbe{}, jetStreamFix(cfg, err)
	}
	u := redact.URL(cfg.JetStream.URL)
	if report.Unreadable != nil {
		return BrokerProbe{Detail: fmt.Sprintf("NATS with JetStream at %s", u), Warning: report.Unreadable.Error(),
			Fix: "check the account's permissions for the JetStream API ($JS.API.>)"}, nil
	}
	stream := "will be created by the producer"
	if report.Exists {
		stream = fmt.Sprintf("exists (%d messages)", report.Messages)
	}
	probe := BrokerProbe{Detail: fmt.Sprintf("NATS with JetStream at %s; stream %s %s", u, cfg.JetStream.Stream, stream)}
	if report.Retention != "" {
		probe.Warning = report.Retention
		probe.Fix = "bound the stream (a max age that outlasts a consumer's outage), with discard new so a full stream refuses rather than drops"
	}
	return probe, nil
}
