package wiring

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/dbsync/dbsync/pkg/config"
	"github.com/dbsync/dbsync/pkg/failure"
	"github.com/dbsync/dbsync/pkg/mq"
)

// kafkaOptions are the Kafka queue's options from the Kafka section. The
// TLS server name, unless Kafka.TLS.ServerName says, is each broker's host.
func kafkaOptions(cfg *config.Config) (mq.KafkaOptions, error) {
	k := cfg.Kafka
	tlsConfig, err := clientTLS("Kafka.TLS", k.TLS, k.TLS.Effective(false), "")
	if err != nil {
		return mq.KafkaOptions{}, err
	}
	return mq.KafkaOptions{
		Brokers:           k.Brokers,
		ClientID:          k.ClientID,
		TLS:               tlsConfig,
		SASL:              mq.KafkaSASL{Mechanism: k.SASL.Mechanism, User: k.SASL.User, Password: k.SASL.Password},
		Partitions:        int32(k.Partitions),
		ReplicationFactor: int16(k.ReplicationFactor),
		Retention:         k.Retention.Duration(),
		AckTimeout:        k.AckTimeout.Duration(),
		KeyByPrimaryKey:   k.Key == config.KafkaKeyPrimaryKey,
	}, nil
}

// openKafka connects the Kafka queue, with the settings to check on
// failure.
func openKafka(ctx context.Context, cfg *config.Config, log logrus.FieldLogger) (mq.MessageQueue, error) {
	opts, err := kafkaOptions(cfg)
	if err != nil {
		return nil, err
	}
	q, err := mq.NewKafka(ctx, opts, log)
	if err != nil {
		return nil, kafkaFix(err)
	}
	return q, nil
}

// kafkaFix attaches the settings to check to a failed Kafka connection.
func kafkaFix(err error) error {
	if errors.Is(err, mq.ErrUnreachable) && failure.Fix(err) == "" {
		return failure.WithFix(err, "start the Kafka brokers there, or fix Kafka.Brokers (host:port of at least one broker the producer can reach)")
	}
	return err
}

// probeKafka checks the brokers, the topics under ProName and the
// permissions the producer needs (mq.InspectKafka), creating nothing.
func probeKafka(ctx context.Context, cfg *config.Config) (BrokerProbe, error) {
	opts, err := kafkaOptions(cfg)
	if err != nil {
		return BrokerProbe{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, probeTimeout+10*time.Second)
	defer cancel()
	r, err := mq.InspectKafka(ctx, opts, cfg.ProName)
	if err != nil {
		return BrokerProbe{}, kafkaFix(err)
	}
	probe := BrokerProbe{Detail: fmt.Sprintf("Kafka at %s: %d broker(s), %d topic(s) under %s (created with %d partition(s) when missing)",
		strings.Join(cfg.Kafka.Brokers, ","), r.Brokers, len(r.Topics), mq.KafkaTopic(cfg.ProName), cfg.Kafka.Partitions)}
	if len(r.Problems) > 0 {
		probe.Warning = strings.Join(r.Problems, "; ")
		probe.Fix = "grant the producer's principal what is missing, or fix the topics, as each problem says"
	}
	return probe, nil
}
