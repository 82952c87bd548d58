package deploy

import (
	"net"
	"net/url"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/dbsync/dbsync/pkg/config"
)

// appNamespace is the namespace the tests put the application in.
const appNamespace = "dbsync"

// endpoint is one end of a connection as NetworkPolicies see it: a pod
// (its namespace's labels, its labels and containers) or an address
// outside the cluster (IP only).
type endpoint struct {
	Namespace string
	NSLabels  map[string]string
	Labels    map[string]string
	Pod       *corev1.PodSpec // for named ports; nil outside the cluster
	IP        string
}

// podIn is a pod of namespace ns with labels l.
func podIn(ns string, l map[string]string, pod *corev1.PodSpec) endpoint {
	return endpoint{Namespace: ns, NSLabels: map[string]string{"kubernetes.io/metadata.name": ns}, Labels: l, Pod: pod}
}

// podOf is a pod of StatefulSet s in the application's namespace.
func podOf(s *appsv1.StatefulSet) endpoint {
	return podIn(appNamespace, s.Spec.Template.Labels, &s.Spec.Template.Spec)
}

// external is an address outside the cluster.
func external(ip string) endpoint { return endpoint{IP: ip} }

func matchSelector(sel *metav1.LabelSelector, l map[string]string) bool {
	if sel == nil {
		return false
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	return err == nil && s.Matches(labels.Set(l))
}

// peerMatches reports whether peer (of a policy in appNamespace) names e.
func peerMatches(peer networkingv1.NetworkPolicyPeer, e endpoint) bool {
	if peer.IPBlock != nil {
		ip := net.ParseIP(e.IP)
		_, cidr, err := net.ParseCIDR(peer.IPBlock.CIDR)
		if ip == nil || err != nil || !cidr.Contains(ip) {
			return false
		}
		for _, ex := range peer.IPBlock.Except {
			if _, c, err := net.ParseCIDR(ex); err == nil && c.Contains(ip) {
				return false
			}
		}
		return true
	}
	if e.Pod == nil && e.Labels == nil {
		return false // selectors name pods only
	}
	if peer.NamespaceSelector == nil {
		if e.Namespace != appNamespace {
			return false
		}
	} else if !matchSelector(peer.NamespaceSelector, e.NSLabels) {
		return false
	}
	return peer.PodSelector == nil || matchSelector(peer.PodSelector, e.Labels)
}

// portMatches reports whether ports admit protocol/port on pod dst (named
// ports are looked up among dst's container ports).
func portMatches(ports []networkingv1.NetworkPolicyPort, proto corev1.Protocol, port int32, dst endpoint) bool {
	if len(ports) == 0 {
		return true
	}
	for _, p := range ports {
		pp := corev1.ProtocolTCP
		if p.Protocol != nil {
			pp = *p.Protocol
		}
		if pp != proto {
			continue
		}
		switch {
		case p.Port == nil:
			return true
		case p.Port.Type == intstr.Int:
			if p.Port.IntVal == port || (p.EndPort != nil && port >= p.Port.IntVal && port <= *p.EndPort) {
				return true
			}
		case dst.Pod != nil:
			for _, c := range dst.Pod.Containers {
				for _, cp := range c.Ports {
					if cp.Name == p.Port.StrVal && cp.ContainerPort == port && (cp.Protocol == proto || (cp.Protocol == "" && proto == corev1.ProtocolTCP)) {
						return true
					}
				}
			}
		}
	}
	return false
}

func hasType(np *networkingv1.NetworkPolicy, t networkingv1.PolicyType) bool {
	if len(np.Spec.PolicyTypes) == 0 {
		return t == networkingv1.PolicyTypeIngress || len(np.Spec.Egress) > 0
	}
	for _, pt := range np.Spec.PolicyTypes {
		if pt == t {
			return true
		}
	}
	return false
}

// allowed reports whether the policies of b let src open a connection to
// dst on proto/port: dst's ingress (when dst is a pod of the namespace)
// and src's egress (when src is a pod of the namespace) must both admit
// it. A pod no policy of its direction selects is open in that direction.
func allowed(b *base, src, dst endpoint, proto corev1.Protocol, port int32) bool {
	return admitted(b, src, dst, proto, port) && egressAllowed(b, src, dst, proto, port)
}

// admitted reports whether dst's ingress policies admit src on proto/port,
// whatever src's own egress policies say.
func admitted(b *base, src, dst endpoint, proto corev1.Protocol, port int32) bool {
	return policyAllows(b, dst, networkingv1.PolicyTypeIngress, func(np *networkingv1.NetworkPolicy) bool {
		for _, r := range np.Spec.Ingress {
			if portMatches(r.Ports, proto, port, dst) && peersMatch(r.From, src) {
				return true
			}
		}
		return false
	})
}

// egressAllowed reports whether src's egress policies let it connect to dst
// on proto/port.
func egressAllowed(b *base, src, dst endpoint, proto corev1.Protocol, port int32) bool {
	return policyAllows(b, src, networkingv1.PolicyTypeEgress, func(np *networkingv1.NetworkPolicy) bool {
		for _, r := range np.Spec.Egress {
			if portMatches(r.Ports, proto, port, dst) && peersMatch(r.To, dst) {
				return true
			}
		}
		return false
	})
}

// policyAllows reports whether the policies of type t selecting subject
// let the connection through (admits says whether one policy does); a pod
// no such policy selects, or one outside the namespace, is open.
func policyAllows(b *base, subject endpoint, t networkingv1.PolicyType, admits func(np *networkingv1.NetworkPolicy) bool) bool {
	if subject.Pod == nil || subject.Namespace != appNamespace {
		return true // not governed by these policies
	}
	selected := false
	for _, ls := range b.NetworkPolicies {
		np := ls.Obj
		if !hasType(np, t) || !matchSelector(&np.Spec.PodSelector, subject.Labels) {
			continue
		}
		selected = true
		if admits(np) {
			return true
		}
	}
	return !selected
}

func peersMatch(peers []networkingv1.NetworkPolicyPeer, e endpoint) bool {
	if len(peers) == 0 {
		return true
	}
	for _, p := range peers {
		if peerMatches(p, e) {
			return true
		}
	}
	return false
}

// checkNetworkPolicies checks the policies of b against the producer s
// (container c, config cfg): default deny, every Service port admitted
// from somewhere, NATS only from its clients, the operations port only
// from the monitoring namespace, and the producer's egress to DNS, its
// broker (NATS, or the Kafka brokers of Kafka.Brokers) and MySQL and
// nowhere else.
func checkNetworkPolicies(b *base, s *appsv1.StatefulSet, c corev1.Container, cfg *config.Config, fail func(string, ...any)) {
	deny := false
	for _, ls := range b.NetworkPolicies {
		np := ls.Obj
		if len(np.Spec.PodSelector.MatchLabels) == 0 && len(np.Spec.PodSelector.MatchExpressions) == 0 &&
			hasType(np, networkingv1.PolicyTypeIngress) && hasType(np, networkingv1.PolicyTypeEgress) &&
			len(np.Spec.Ingress) == 0 && len(np.Spec.Egress) == 0 {
			deny = true
		}
	}
	if !deny {
		fail("%s: no default-deny NetworkPolicy (podSelector {}, policyTypes [Ingress, Egress], no rules)", b.Dir)
	}

	monitoring := podIn("monitoring", map[string]string{"app": "prometheus"}, &corev1.PodSpec{})
	stranger := podIn(appNamespace, map[string]string{"app": "other"}, &corev1.PodSpec{})
	otherNS := podIn("other", map[string]string{"dbsync.io/nats-client": "true"}, &corev1.PodSpec{})
	client := podIn(appNamespace, map[string]string{"dbsync.io/nats-client": "true"}, &corev1.PodSpec{})
	producer := podOf(s)

	// Every Service port reaches its pods from somewhere.
	for _, name := range keysOf(b.Services) {
		ls := b.Services[name]
		for _, st := range b.StatefulSets {
			if !selects(ls.Obj.Spec.Selector, st.Obj.Spec.Template.Labels) {
				continue
			}
			dst := podOf(st.Obj)
			for _, sp := range ls.Obj.Spec.Ports {
				target := sp.TargetPort
				if target.Type == intstr.Int && target.IntVal == 0 {
					target = intstr.FromInt32(sp.Port)
				}
				for _, cont := range st.Obj.Spec.Template.Spec.Containers {
					cp, ok := resolvePort(cont, target)
					if !ok {
						continue
					}
					proto := sp.Protocol
					if proto == "" {
						proto = corev1.ProtocolTCP
					}
					// From Prometheus, a NATS client, or another pod of the
					// same StatefulSet (the NATS routes).
					if !admitted(b, monitoring, dst, proto, cp.ContainerPort) && !admitted(b, client, dst, proto, cp.ContainerPort) && !admitted(b, dst, dst, proto, cp.ContainerPort) {
						fail("%s: port %q (container port %d of StatefulSet %q) is admitted by no NetworkPolicy ingress rule: the Service would not work", ls.Where, sp.Name, cp.ContainerPort, st.Obj.Name)
					}
				}
			}
		}
	}

	// The operations port only from the monitoring namespace.
	if port, err := listenPort(cfg.HTTP.Listen); err == nil && !cfg.HTTP.Disabled {
		p := int32(port)
		if !allowed(b, monitoring, producer, corev1.ProtocolTCP, p) {
			fail("NetworkPolicies: the producer's operations port %d is not reachable from the namespace \"monitoring\" (Prometheus)", p)
		}
		for _, who := range []struct {
			name string
			e    endpoint
		}{{"a pod of its own namespace", stranger}, {"a NATS client", client}, {"another namespace", otherNS}} {
			if admitted(b, who.e, producer, corev1.ProtocolTCP, p) {
				fail("NetworkPolicies: the producer's operations port %d is reachable from %s; admit only the namespace \"monitoring\"", p, who.name)
			}
		}
	}

	// NATS: from its clients only.
	if cfg.MQName == "jetstream" && cfg.JetStream.URL != "" {
		u, _ := url.Parse(cfg.JetStream.URL)
		port := int32(4222)
		if u != nil && u.Port() != "" {
			n, _ := strconv.Atoi(u.Port())
			port = int32(n)
		}
		natsSet, ok := b.StatefulSets["dbsync-nats"]
		if ok {
			nats := podOf(natsSet.Obj)
			if !allowed(b, producer, nats, corev1.ProtocolTCP, port) {
				fail("NetworkPolicies: the producer cannot reach NATS on port %d (JetStream.URL %q): it needs egress to, and NATS ingress from, the producer's pods", port, cfg.JetStream.URL)
			}
			if !allowed(b, client, nats, corev1.ProtocolTCP, port) {
				fail("NetworkPolicies: a pod labelled dbsync.io/nats-client=true cannot reach NATS on port %d", port)
			}
			if admitted(b, stranger, nats, corev1.ProtocolTCP, port) {
				fail("NetworkPolicies: an unlabelled pod of the namespace reaches NATS on port %d; admit only NATS clients", port)
			}
			if admitted(b, otherNS, nats, corev1.ProtocolTCP, port) {
				fail("NetworkPolicies: a pod of an unlabelled namespace reaches NATS on port %d", port)
			}
			for _, p := range []int32{8222, 6222, 7422} {
				if admitted(b, client, nats, corev1.ProtocolTCP, p) || admitted(b, monitoring, nats, corev1.ProtocolTCP, p) {
					fail("NetworkPolicies: NATS port %d (monitoring, routes or leafnodes) is reachable; only the client port may be", p)
				}
			}
		}
	}

	// The producer's egress: DNS, MySQL, the Kafka brokers, and nothing
	// else outside.
	dns := podIn("kube-system", map[string]string{"k8s-app": "kube-dns"}, &corev1.PodSpec{})
	checkRoutePolicies(b, []endpoint{monitoring, stranger, otherNS, client, producer}, dns, fail)
	for _, proto := range []corev1.Protocol{corev1.ProtocolUDP, corev1.ProtocolTCP} {
		if !allowed(b, producer, dns, proto, 53) {
			fail("NetworkPolicies: the producer cannot reach the cluster DNS (kube-system, k8s-app=kube-dns) on %s 53", proto)
		}
	}
	if mp, err := cfg.Mysql.Port.Int(); err == nil {
		if !allowed(b, producer, external("203.0.113.10"), corev1.ProtocolTCP, int32(mp)) {
			fail("NetworkPolicies: the producer cannot reach MySQL on port %d (Mysql.Port)", mp)
		}
	}
	brokerPorts := map[int32]bool{}
	if cfg.MQName == "kafka" {
		for _, addr := range cfg.Kafka.Brokers {
			host, p, err := net.SplitHostPort(addr)
			n, perr := strconv.Atoi(p)
			if err != nil || perr != nil {
				continue // config.Parse reports it
			}
			brokerPorts[int32(n)] = true
			if !allowed(b, producer, kafkaBroker(host), corev1.ProtocolTCP, int32(n)) {
				fail("NetworkPolicies: the producer cannot reach the Kafka broker %s on port %d (Kafka.Brokers)", addr, n)
			}
		}
	}
	for _, p := range []int32{443, 80, 6379, 4222, 9092, 9093} {
		if mp, err := cfg.Mysql.Port.Int(); brokerPorts[p] || (err == nil && int32(mp) == p) {
			continue
		}
		if allowed(b, producer, external("203.0.113.10"), corev1.ProtocolTCP, p) {
			fail("NetworkPolicies: the producer may connect to port %d anywhere; allow only what it needs (DNS, its broker, MySQL)", p)
		}
	}
}

// kafkaBroker is the endpoint a Kafka broker address names: a pod of the
// namespace of an in-cluster name (<pod>.<service>.<namespace>.svc or
// <service>.<namespace>.svc, optionally .cluster.local), else an address
// outside the cluster.
func kafkaBroker(host string) endpoint {
	labels := strings.Split(strings.TrimSuffix(strings.TrimSuffix(host, "."), ".cluster.local"), ".")
	if n := len(labels); n >= 3 && labels[n-1] == "svc" {
		return podIn(labels[n-2], map[string]string{"app.kubernetes.io/name": "kafka"}, &corev1.PodSpec{})
	}
	return external("198.51.100.20")
}

// natsRoutePort returns the NATS container's route port (the container
// port named "cluster"), if it has one.
func natsRoutePort(s *appsv1.StatefulSet) (int32, bool) {
	for _, c := range s.Spec.Template.Spec.Containers {
		if c.Name != "nats" {
			continue
		}
		for _, p := range c.Ports {
			if p.Name == "cluster" {
				return p.ContainerPort, true
			}
		}
	}
	return 0, false
}

// checkRoutePolicies checks the NATS cluster's routes: with a route port,
// NATS pods reach each other on it (ingress and egress) and the cluster
// DNS (the routes name the pods), and none of others does, nor does NATS
// reach anything else; without one, no port 6222 of NATS is reachable,
// even from NATS.
func checkRoutePolicies(b *base, others []endpoint, dns endpoint, fail func(string, ...any)) {
	ls, ok := b.StatefulSets["dbsync-nats"]
	if !ok {
		return
	}
	nats := podOf(ls.Obj)
	port, clustered := natsRoutePort(ls.Obj)
	if !clustered {
		if admitted(b, nats, nats, corev1.ProtocolTCP, 6222) {
			fail("NetworkPolicies: NATS admits port 6222 from NATS pods, but the NATS container has no route port (a container port named \"cluster\")")
		}
		return
	}
	if !allowed(b, nats, nats, corev1.ProtocolTCP, port) {
		fail("NetworkPolicies: the NATS pods cannot reach each other's route port %d (ingress from, and egress to, the NATS pods): the cluster would not form", port)
	}
	for _, o := range others {
		if admitted(b, o, nats, corev1.ProtocolTCP, port) {
			fail("NetworkPolicies: the NATS route port %d is reachable from a pod labelled %v in namespace %q; admit only the NATS pods", port, o.Labels, o.Namespace)
		}
	}
	for _, proto := range []corev1.Protocol{corev1.ProtocolUDP, corev1.ProtocolTCP} {
		if !allowed(b, nats, dns, proto, 53) {
			fail("NetworkPolicies: NATS cannot reach the cluster DNS on %s 53: it could not resolve the routes' pod names", proto)
		}
	}
	for _, p := range []int32{443, 4222, 3306} {
		if allowed(b, nats, external("203.0.113.10"), corev1.ProtocolTCP, p) {
			fail("NetworkPolicies: NATS may connect to port %d outside the cluster; it needs only its routes and DNS", p)
		}
	}
}
