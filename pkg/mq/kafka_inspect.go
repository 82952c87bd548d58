package mq

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// KafkaReport is what InspectKafka found.
type KafkaReport struct {
	// Brokers is how many brokers the cluster has.
	Brokers int
	// Topics maps the topics under the producer's prefix to their
	// partition counts.
	Topics map[string]int
	// Problems are what would stop or hurt the producer, each with its
	// fix: missing permissions, topics with another partition count.
	Problems []string
}

// InspectKafka checks, creating and writing nothing, what the producer
// needs of a Kafka cluster: the brokers answer; the principal may write
// idempotently (IDEMPOTENT_WRITE, by taking a producer id), create topics
// (CREATE, by a validate-only request) and write and describe the existing
// topics under prefix (their authorized operations); those topics have the
// configured partition count. It fails only when the brokers cannot be
// reached or refuse the login.
func InspectKafka(ctx context.Context, opts KafkaOptions, prefix string) (KafkaReport, error) {
	k, err := NewKafka(ctx, opts, nil)
	if err != nil {
		return KafkaReport{}, err
	}
	defer k.Close()
	r := KafkaReport{Topics: map[string]int{}}
	if md, err := k.adm.BrokerMetadata(ctx); err == nil {
		r.Brokers = len(md.Brokers)
	}
	if _, _, err := k.cl.ProducerID(ctx); err != nil {
		r.Problems = append(r.Problems, fmt.Sprintf("the idempotent producer cannot start (%v): grant the principal IDEMPOTENT_WRITE on the cluster "+
			"(or WRITE on its topics, Kafka 3.0+)", err))
	}
	probe := KafkaTopic(prefix + "dbsync_doctor.probe")
	created, err := k.adm.ValidateCreateTopics(ctx, k.opts.Partitions, k.opts.ReplicationFactor, nil, probe)
	if err == nil {
		err = created[probe].Err
	}
	if err != nil {
		r.Problems = append(r.Problems, kafkaCreateProblem(err))
	}
	topics, err := k.adm.ListTopics(ctx)
	if err != nil {
		return r, fmt.Errorf("mq: Kafka: list topics: %w", err)
	}
	topicPrefix := KafkaTopic(prefix)
	var names []string
	for name, d := range topics {
		if strings.HasPrefix(name, topicPrefix) && d.Err == nil {
			r.Topics[name] = len(d.Partitions)
			names = append(names, name)
			if int32(len(d.Partitions)) != k.opts.Partitions {
				r.Problems = append(r.Problems, fmt.Sprintf("topic %s has %d partitions, Kafka.Partitions says %d: the producer refuses it; "+
					"set Kafka.Partitions to match or recreate the topic", name, len(d.Partitions), k.opts.Partitions))
			}
		}
	}
	slices.Sort(names)
	r.Problems = append(r.Problems, k.topicPermissions(ctx, names)...)
	return r, nil
}

// kafkaCreateProblem says why topics cannot be created.
func kafkaCreateProblem(err error) string {
	if errors.Is(err, kerr.TopicAuthorizationFailed) || errors.Is(err, kerr.ClusterAuthorizationFailed) {
		return "the principal may not create topics (CREATE): create each table's topic yourself, with Kafka.Partitions partitions, or grant CREATE"
	}
	return fmt.Sprintf("a topic with the configured Kafka.Partitions and Kafka.ReplicationFactor would be refused (%v): check them against the cluster "+
		"(a replication factor above the broker count is refused)", err)
}

// topicPermissions checks that the principal may write and describe each
// topic (the brokers' authorized operations; brokers that do not report
// them are not judged).
func (k *Kafka) topicPermissions(ctx context.Context, names []string) []string {
	if len(names) == 0 {
		return nil
	}
	req := kmsg.NewPtrMetadataRequest()
	req.IncludeTopicAuthorizedOperations = true
	for _, n := range names {
		t := kmsg.NewMetadataRequestTopic()
		t.Topic = kmsg.StringPtr(n)
		req.Topics = append(req.Topics, t)
	}
	resp, err := req.RequestWith(ctx, k.cl)
	if err != nil {
		return []string{fmt.Sprintf("cannot read the topics' permissions: %v", err)}
	}
	var problems []string
	for _, t := range resp.Topics {
		if t.AuthorizedOperations == -2147483648 || t.Topic == nil {
			continue // not reported
		}
		ops := kadm.DecodeACLOperations(t.AuthorizedOperations)
		for _, need := range []kmsg.ACLOperation{kmsg.ACLOperationWrite, kmsg.ACLOperationDescribe} {
			if !slices.Contains(ops, need) && !slices.Contains(ops, kmsg.ACLOperationAll) {
				problems = append(problems, fmt.Sprintf("the principal may not %s topic %s: grant it %s",
					strings.ToLower(need.String()), *t.Topic, strings.ToUpper(need.String())))
			}
		}
	}
	return problems
}
