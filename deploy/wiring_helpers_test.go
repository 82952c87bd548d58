package deploy

import (
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/dbsync/dbsync/pkg/config"
)

// The producer's StatefulSet and container in the base.
const (
	producerSet       = "dbsync"
	producerContainer = "producer"
)

// flagValue returns the value of -name / --name in args ("-name v" or
// "-name=v"), the way Go's flag package reads it.
func flagValue(args []string, name string) (string, bool) {
	for i, a := range args {
		for _, dash := range []string{"-", "--"} {
			if a == dash+name && i+1 < len(args) {
				return args[i+1], true
			}
			if v, ok := strings.CutPrefix(a, dash+name+"="); ok {
				return v, true
			}
		}
	}
	return "", false
}

// resolvePort returns the container port p names (by name or number).
func resolvePort(c corev1.Container, p intstr.IntOrString) (corev1.ContainerPort, bool) {
	for _, cp := range c.Ports {
		if (p.Type == intstr.String && cp.Name == p.StrVal) || (p.Type == intstr.Int && cp.ContainerPort == p.IntVal) {
			return cp, true
		}
	}
	return corev1.ContainerPort{}, false
}

// under reports whether p is dir or lies below it (both absolute, slash).
func under(p, dir string) bool {
	p, dir = path.Clean(p), path.Clean(dir)
	return p == dir || strings.HasPrefix(p, strings.TrimSuffix(dir, "/")+"/")
}

// checkWiring checks that the pieces of the base fit together and fit the
// image built by df (nil skips the image cross-checks). It returns one
// message per problem, each naming the object and field that is wrong.
func checkWiring(b *base, df *dockerfile) []string {
	var problems []string
	fail := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

	checkWorkloads(b, fail)

	ls, ok := b.StatefulSets[producerSet]
	if !ok {
		fail("%s: no StatefulSet %q (the producer) among the resources", b.Dir, producerSet)
		return problems
	}
	s, at := ls.Obj, ls.Where
	pod := s.Spec.Template.Spec

	if g := pod.TerminationGracePeriodSeconds; g == nil || *g <= 30 {
		fail("%s: spec.template.spec.terminationGracePeriodSeconds must be set above 30 (the producer drains for up to 30s on SIGTERM before saving its checkpoint; Kubernetes defaults to 30)", at)
	}
	sc := pod.SecurityContext
	if sc == nil {
		sc = &corev1.PodSecurityContext{}
	}
	if sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
		fail("%s: spec.template.spec.securityContext.runAsNonRoot must be true", at)
	}
	if sc.FSGroup == nil {
		fail("%s: spec.template.spec.securityContext.fsGroup is unset: the volume mounted at the data directory would not be writable for the non-root user", at)
	}

	var c *corev1.Container
	for i := range pod.Containers {
		if pod.Containers[i].Name == producerContainer {
			c = &pod.Containers[i]
		}
	}
	if c == nil {
		fail("%s: no container named %q in spec.template.spec.containers", at, producerContainer)
		return problems
	}
	cat := fmt.Sprintf("%s, container %q", at, c.Name)
	if cs := c.SecurityContext; cs == nil {
		fail("%s: securityContext is unset; want allowPrivilegeEscalation false, readOnlyRootFilesystem true, capabilities.drop [ALL]", cat)
	} else {
		if cs.AllowPrivilegeEscalation == nil || *cs.AllowPrivilegeEscalation {
			fail("%s: securityContext.allowPrivilegeEscalation must be false", cat)
		}
		if cs.ReadOnlyRootFilesystem == nil || !*cs.ReadOnlyRootFilesystem {
			fail("%s: securityContext.readOnlyRootFilesystem must be true", cat)
		}
		if cs.Capabilities == nil || !slices.Contains(cs.Capabilities.Drop, "ALL") {
			fail("%s: securityContext.capabilities.drop must contain ALL", cat)
		}
	}

	// The image: user, default -config, exposed port.
	var imageCmd []string
	var imageUID int64
	if df != nil {
		fin := df.final()
		if in, ok := fin.last("CMD"); ok {
			imageCmd, _ = execForm(in)
		}
		if in, ok := fin.last("USER"); ok {
			imageUID, _ = parseUser(in.Args)
		}
		if sc.RunAsUser != nil && imageUID != 0 && *sc.RunAsUser != imageUID {
			fail("%s: securityContext.runAsUser %d differs from the image's USER %d (%s)", at, *sc.RunAsUser, imageUID, df.Path)
		}
	}

	// -config lies in the ConfigMap volume, under a key of the ConfigMap.
	args := append(append([]string(nil), c.Command...), c.Args...)
	if len(c.Command) == 0 && len(c.Args) == 0 {
		args = imageCmd
	}
	cfgPath, ok := flagValue(args, "config")
	if !ok {
		fail("%s: command/args %q pass no -config PATH (the producer would read ./config.json in /data)", cat, args)
		return problems
	}
	if imagePath, ok := flagValue(imageCmd, "config"); df != nil && ok && imagePath != cfgPath {
		fail("%s: -config %s differs from the image's CMD -config %s (%s): mount the config where the image looks for it", cat, cfgPath, imagePath, df.Path)
	}
	var mount *corev1.VolumeMount
	for i, m := range c.VolumeMounts {
		if path.Clean(m.MountPath) == path.Dir(path.Clean(cfgPath)) {
			mount = &c.VolumeMounts[i]
		}
	}
	if mount == nil {
		fail("%s: -config %s is not directly in the mountPath of any volumeMount (mounts: %s)", cat, cfgPath, describeMounts(*c))
		return problems
	}
	var vol *corev1.Volume
	for i := range pod.Volumes {
		if pod.Volumes[i].Name == mount.Name {
			vol = &pod.Volumes[i]
		}
	}
	if vol == nil || vol.ConfigMap == nil {
		fail("%s: -config %s is in volumeMount %q at %s, which is not a configMap volume of the pod", cat, cfgPath, mount.Name, mount.MountPath)
		return problems
	}
	cm, ok := b.ConfigMaps[vol.ConfigMap.Name]
	if !ok {
		fail("%s: volume %q mounts ConfigMap %q, which the base does not define (ConfigMaps: %s)", at, vol.Name, vol.ConfigMap.Name, keysOf(b.ConfigMaps))
		return problems
	}
	file := path.Base(cfgPath)
	key := file
	if len(vol.ConfigMap.Items) > 0 {
		key = ""
		for _, it := range vol.ConfigMap.Items {
			if it.Path == file {
				key = it.Key
			}
		}
		if key == "" {
			fail("%s: volume %q lists items, none with path %q, so -config %s does not exist in the pod", at, vol.Name, file, cfgPath)
			return problems
		}
	}
	data, ok := cm.Data[key]
	if !ok {
		fail("%s: -config %s needs key %q in ConfigMap %q (%s), which has keys %s", cat, cfgPath, key, vol.ConfigMap.Name, cm.Where, keysOf(cm.Data))
		return problems
	}

	// No secret in the ConfigMap: passwords and tokens come from files of
	// a Secret volume (or the environment).
	src := fmt.Sprintf("ConfigMap %q key %q (%s)", vol.ConfigMap.Name, key, cm.Where)
	for _, k := range secretKeysSet([]byte(data)) {
		fail("%s: %s is set; keep secrets out of the ConfigMap: name a file of a Secret volume (%sFile) or use its DBSYNC_* variable from a secretKeyRef", src, k, k)
	}

	// The config loads as the producer would load it in the pod, with no
	// environment: every file it names must be mounted at that path (the
	// mounted ConfigMaps and Secrets are laid out under a temporary root,
	// and the config's paths moved there).
	root, err := os.MkdirTemp("", "dbsync-pod-")
	if err != nil {
		fail("%v", err)
		return problems
	}
	defer os.RemoveAll(root)
	for _, p := range podFS(b, s, *c, root) {
		fail("%s", p)
	}
	rooted, unmounted := rootPaths(data, *c, root)
	for _, p := range unmounted {
		fail("%s: %q is under no volumeMount of %s (mounts: %s): the producer would not find it", src, p, cat, describeMounts(*c))
	}
	cfg, err := config.Parse([]byte(rooted), src, nil)
	if err != nil {
		fail("%s", strings.ReplaceAll(err.Error(), filepath.ToSlash(root), ""))
		return problems
	}

	// One producer streams per source. Several replicas only with a store
	// they share and HA.Standby: the lease holder streams, the others wait.
	switch {
	case s.Spec.Replicas == nil:
		fail("%s: spec.replicas is unset (defaults to 1, but say it)", at)
	case *s.Spec.Replicas > 1 && (!cfg.HA.Standby || cfg.Storage.DaoName == "bolt"):
		fail("%s: spec.replicas is %d, want 1: one producer per source database (with the %s store and HA.Standby %v, a second one would stream every change twice "+
			"or be refused; several replicas need Storage.DaoName nats or redis and HA.Standby in %s)", at, *s.Spec.Replicas, cfg.Storage.DaoName, cfg.HA.Standby, src)
	case *s.Spec.Replicas < 1:
		fail("%s: spec.replicas is %d: no producer runs", at, *s.Spec.Replicas)
	}
	for _, f := range []struct{ key, path string }{
		{"Mysql.PasswordFile", cfg.Mysql.PasswordFile},
		{"Redis.PasswordFile", cfg.Redis.PasswordFile},
		{"JetStream.Auth.PasswordFile", cfg.JetStream.Auth.PasswordFile},
		{"JetStream.Auth.TokenFile", cfg.JetStream.Auth.TokenFile},
		{"JetStream.Auth.NKeySeedFile", cfg.JetStream.Auth.NKeySeedFile},
		{"JetStream.Auth.CredsFile", cfg.JetStream.Auth.CredsFile},
		{"JetStream.TLS.Key", cfg.JetStream.TLS.Key},
		{"Mysql.TLS.Key", cfg.Mysql.TLS.Key},
		{"Kafka.SASL.PasswordFile", cfg.Kafka.SASL.PasswordFile},
		{"Kafka.TLS.Key", cfg.Kafka.TLS.Key},
	} {
		if f.path == "" {
			continue
		}
		p := fromRoot(f.path, root)
		m, _ := mountOf(*c, p)
		if v, ok := volumeOf(pod, m.Name); !ok || v.Secret == nil {
			fail("%s: %s %q is not in a Secret volume (it is in volumeMount %q): a secret must not live in a ConfigMap or the image", src, f.key, p, m.Name)
		}
	}

	// Every file of a Secret volume the producer mounts is one the config
	// names: a secret it does not use (the NATS CA with Kafka) has no
	// business in its pod.
	named := map[string]bool{}
	for _, m := range quotedPath.FindAllStringSubmatch(data, -1) {
		named[path.Clean(m[1])] = true
	}
	for _, m := range c.VolumeMounts {
		v, ok := volumeOf(pod, m.Name)
		if !ok || v.Secret == nil {
			continue
		}
		var files []string
		for _, it := range v.Secret.Items {
			files = append(files, it.Path)
		}
		if len(v.Secret.Items) == 0 {
			if o, ok := b.Secrets[v.Secret.SecretName]; ok {
				files = keysOf(o.Data)
			}
		}
		for _, f := range files {
			if p := path.Join(m.MountPath, f); !named[p] {
				fail("%s: volumeMount %q puts %s of Secret %q in the pod, and %s never names it: mount only the secrets the producer uses", cat, m.Name, p, v.Secret.SecretName, src)
			}
		}
	}

	// The data directory and the bolt file are on the volume claim.
	claims := map[string]bool{}
	for _, t := range s.Spec.VolumeClaimTemplates {
		claims[t.Name] = true
	}
	onClaim := func(p string) (corev1.VolumeMount, bool) {
		for _, m := range c.VolumeMounts {
			if claims[m.Name] && !m.ReadOnly && path.IsAbs(p) && under(p, m.MountPath) {
				return m, true
			}
		}
		return corev1.VolumeMount{}, false
	}
	// DataDir holds local state only for the bolt file and the embedded
	// broker (no JetStream.URL); with neither, the pod needs no volume.
	embedded := cfg.MQName == "jetstream" && cfg.JetStream.URL == ""
	if dataDir := fromRoot(cfg.DataDir, root); (cfg.Storage.DaoName == "bolt" || embedded) && !onClaimOK(onClaim(dataDir)) {
		fail("%s: DataDir %q is not under a writable volumeMount of a volumeClaimTemplate (%s; mounts: %s): local state would be lost with the pod", src, dataDir, cat, describeMounts(*c))
	}
	if cfg.Storage.DaoName == "bolt" {
		if bolt := fromRoot(cfg.BoltPath(), root); !onClaimOK(onClaim(bolt)) {
			fail("%s: the bolt checkpoint file %q (DataDir + Bolt.File) is not under a writable volumeMount of a volumeClaimTemplate (%s; mounts: %s): the checkpoint would be lost with the pod", src, bolt, cat, describeMounts(*c))
		}
	}

	// The operations port: HTTP.Listen, the container port, the probes, the
	// image's EXPOSE and the metrics Service agree.
	if cfg.HTTP.Disabled {
		fail("%s: HTTP.Disabled is true, but the probes need /livez and /readyz", src)
	} else if httpPort, err := listenPort(cfg.HTTP.Listen); err != nil {
		fail("%s: HTTP.Listen: %v", src, err)
	} else {
		var cp *corev1.ContainerPort
		for i := range c.Ports {
			if c.Ports[i].ContainerPort == int32(httpPort) {
				cp = &c.Ports[i]
			}
		}
		if cp == nil {
			fail("%s: no container port %d, the port of HTTP.Listen %q in %s (ports: %s)", cat, httpPort, cfg.HTTP.Listen, src, describePorts(*c))
		} else {
			for _, pr := range []struct {
				name  string
				probe *corev1.Probe
				path  string
			}{{"livenessProbe", c.LivenessProbe, "/livez"}, {"readinessProbe", c.ReadinessProbe, "/readyz"}} {
				switch {
				case pr.probe == nil || pr.probe.HTTPGet == nil:
					fail("%s: %s must be an httpGet of %s", cat, pr.name, pr.path)
				case pr.probe.HTTPGet.Path != pr.path:
					fail("%s: %s.httpGet.path is %q, want %q", cat, pr.name, pr.probe.HTTPGet.Path, pr.path)
				default:
					got, ok := resolvePort(*c, pr.probe.HTTPGet.Port)
					if !ok || got.ContainerPort != cp.ContainerPort {
						fail("%s: %s.httpGet.port %s is not the container port %d (%q) HTTP.Listen %q listens on (ports: %s)", cat, pr.name, pr.probe.HTTPGet.Port.String(), cp.ContainerPort, cp.Name, cfg.HTTP.Listen, describePorts(*c))
					}
				}
			}
			if df != nil && !slices.Contains(exposedPorts(df), httpPort) {
				fail("%s: the final stage does not EXPOSE %d, the port of HTTP.Listen %q in %s", df.Path, httpPort, cfg.HTTP.Listen, src)
			}
			checkMetricsService(b, s, *c, *cp, fail)
		}
	}

	// Environment: only variables pkg/config reads; secrets come from the
	// base's Secret.
	overrides := map[string]string{}
	for _, o := range config.EnvOverrides() {
		overrides[o.Name] = o.Key
	}
	set := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		set[e.Name] = e
		if e.Name == "GOMEMLIMIT" {
			continue // checkMemLimit
		}
		key, known := overrides[e.Name]
		if !known {
			fail("%s: env %s is not a variable pkg/config reads (config.EnvOverrides: %s); it would be ignored", cat, e.Name, overrideNames())
		}
		if e.ValueFrom == nil && strings.HasSuffix(key, "Password") && e.Value != "" {
			fail("%s: env %s holds a literal password; take it from the Secret with valueFrom.secretKeyRef", cat, e.Name)
		}
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			checkRef(cat, "env "+e.Name+" secretKeyRef", "Secret", e.ValueFrom.SecretKeyRef.Name, e.ValueFrom.SecretKeyRef.Key, b.Secrets, fail)
		}
		if e.ValueFrom != nil && e.ValueFrom.ConfigMapKeyRef != nil {
			checkRef(cat, "env "+e.Name+" configMapKeyRef", "ConfigMap", e.ValueFrom.ConfigMapKeyRef.Name, e.ValueFrom.ConfigMapKeyRef.Key, b.ConfigMaps, fail)
		}
	}
	checkMemLimit(cat, *c, fail)
	for _, ef := range c.EnvFrom {
		var name, kind string
		var objs map[string]dataObject
		switch {
		case ef.SecretRef != nil:
			name, kind, objs = ef.SecretRef.Name, "Secret", b.Secrets
		case ef.ConfigMapRef != nil:
			name, kind, objs = ef.ConfigMapRef.Name, "ConfigMap", b.ConfigMaps
		default:
			continue
		}
		o, ok := objs[name]
		if !ok {
			fail("%s: envFrom names %s %q, which the base does not define", cat, kind, name)
			continue
		}
		for k := range o.Data {
			if _, known := overrides[ef.Prefix+k]; !known {
				fail("%s: envFrom %s %q sets %s, not a variable pkg/config reads (%s)", cat, kind, name, ef.Prefix+k, overrideNames())
			}
		}
	}
	if e, ok := set["DBSYNC_MYSQL_PASSWORD"]; cfg.Mysql.PasswordFile == "" && (!ok || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil) {
		fail("%s: the MySQL password must come from a Secret: set Mysql.PasswordFile to a file of a Secret volume in %s, or env DBSYNC_MYSQL_PASSWORD from a secretKeyRef", cat, src)
	}

	// The broker address names the NATS Service and one of its ports, and
	// that port reaches a container port of the pods it selects.
	if cfg.MQName == "jetstream" {
		checkJetStreamURL(b, cfg, src, fail)
		if cfg.JetStream.Auth.Kind() == "" {
			fail("%s: JetStream.Auth is empty; the producer must authenticate to NATS (NKeySeedFile, CredsFile or User and PasswordFile from a Secret volume)", src)
		}
		if u, err := url.Parse(cfg.JetStream.URL); err == nil && cfg.JetStream.TLS.Effective(u.Scheme == "tls") != config.TLSVerifyIdentity {
			fail("%s: JetStream.TLS is %q; want verify_identity (JetStream.TLS.CA from a Secret volume, a tls:// URL) so the broker's certificate is checked", src, cfg.JetStream.TLS.Effective(u.Scheme == "tls"))
		}
	}
	if cfg.MQName == "kafka" {
		if cfg.Kafka.SASL.Mechanism == "" {
			fail("%s: Kafka.SASL.Mechanism is empty; the producer must authenticate to Kafka (SCRAM-SHA-512 with User and PasswordFile from a Secret volume)", src)
		}
		if m := cfg.Kafka.TLS.Effective(false); m != config.TLSVerifyIdentity {
			fail("%s: Kafka.TLS is %q; want verify_identity (Kafka.TLS.CA, the brokers' CA, from a Secret volume) so the brokers' certificates are checked and the SASL password is not sent in clear", src, m)
		}
	}
	if m := cfg.Mysql.TLS.Mode; m != config.TLSVerifyIdentity && m != config.TLSVerifyCA {
		fail("%s: Mysql.TLS.Mode is %q; want verify_identity (or verify_ca) with Mysql.TLS.CA, so the source's certificate is checked", src, m)
	}
	if cfg.HTTP.Pprof {
		fail("%s: HTTP.Pprof is on; profiles expose internals and cost CPU, keep it off in the deployment", src)
	}
	checkNetworkPolicies(b, s, *c, cfg, fail)
	return problems
}

func onClaimOK(_ corev1.VolumeMount, ok bool) bool { return ok }

// secretKeysSet returns the key paths of config JSON holding a non-empty
// Password or Token.
func secretKeysSet(data []byte) []string {
	var v any
	if json.Unmarshal(data, &v) != nil {
		return nil // config.Parse reports it
	}
	var out []string
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		m, ok := v.(map[string]any)
		if !ok {
			return
		}
		for _, k := range keysOf(m) {
			p := k
			if prefix != "" {
				p = prefix + "." + k
			}
			if s, ok := m[k].(string); ok && s != "" && (strings.EqualFold(k, "Password") || strings.EqualFold(k, "Token")) {
				out = append(out, p)
			}
			walk(p, m[k])
		}
	}
	walk("", v)
	return out
}

// checkMemLimit requires GOMEMLIMIT on container c: from its own memory
// limit (resourceFieldRef limits.memory), or a literal 80-95% of it.
func checkMemLimit(cat string, c corev1.Container, fail func(string, ...any)) {
	limit, hasLimit := c.Resources.Limits[corev1.ResourceMemory]
	i := slices.IndexFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "GOMEMLIMIT" })
	if i < 0 {
		fail("%s: env GOMEMLIMIT is not set; set it to ~90%% of the memory limit (or valueFrom.resourceFieldRef limits.memory) so the Go runtime collects before an OOM kill", cat)
		return
	}
	if !hasLimit {
		fail("%s: GOMEMLIMIT is set but the container has no memory limit", cat)
		return
	}
	e := c.Env[i]
	if r := e.ValueFrom; r != nil {
		if r.ResourceFieldRef == nil || r.ResourceFieldRef.Resource != "limits.memory" || r.ResourceFieldRef.ContainerName != c.Name {
			fail("%s: env GOMEMLIMIT must come from the container's own memory limit (valueFrom.resourceFieldRef limits.memory, containerName %s) or be ~90%% of it", cat, c.Name)
		}
		return
	}
	n, err := parseMemLimit(e.Value)
	if err != nil {
		fail("%s: env GOMEMLIMIT %q: %v", cat, e.Value, err)
		return
	}
	if lim := limit.Value(); n < lim*80/100 || n > lim*95/100 {
		fail("%s: env GOMEMLIMIT %q is %d%% of the memory limit %s; want 80-95%% (change them together)", cat, e.Value, n*100/lim, limit.String())
	}
}

// parseMemLimit parses a GOMEMLIMIT value the way the Go runtime does:
// bytes with an optional B, KiB, MiB, GiB or TiB suffix.
func parseMemLimit(v string) (int64, error) {
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		n      int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}} {
		if num, ok := strings.CutSuffix(v, u.suffix); ok {
			v, mult = num, u.n
			break
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("not a size the Go runtime reads (e.g. 460MiB)")
	}
	return n * mult, nil
}

// checkJetStreamURL checks JetStream.URL against the Services of the base.
func checkJetStreamURL(b *base, cfg *config.Config, src string, fail func(string, ...any)) {
	if cfg.JetStream.URL == "" {
		fail("%s: JetStream.URL is empty, so the producer would start an embedded NATS server on %s inside the pod that no consumer can reach; set it to the NATS Service, e.g. nats://dbsync-nats:4222", src, cfg.JetStream.Listen)
		return
	}
	u, err := url.Parse(cfg.JetStream.URL)
	if err != nil || u.Hostname() == "" {
		fail("%s: JetStream.URL %q is not a nats://host:port URL", src, cfg.JetStream.URL)
		return
	}
	svcName, _, _ := strings.Cut(u.Hostname(), ".") // "svc" or "svc.namespace.svc.cluster.local"
	ls, ok := b.Services[svcName]
	if !ok {
		fail("%s: JetStream.URL %q names host %q, which is no Service of the base (Services: %s)", src, cfg.JetStream.URL, u.Hostname(), keysOf(b.Services))
		return
	}
	port := 4222
	if u.Port() != "" {
		port, _ = strconv.Atoi(u.Port())
	}
	for _, sp := range ls.Obj.Spec.Ports {
		if int(sp.Port) == port {
			return
		}
	}
	fail("%s: JetStream.URL %q uses port %d, which Service %q (%s) does not expose (ports: %s)", src, cfg.JetStream.URL, port, svcName, ls.Where, describeServicePorts(ls.Obj))
}

// checkMetricsService requires a Service with prometheus scrape annotations
// that selects the producer's pods and forwards to the operations port.
func checkMetricsService(b *base, s *appsv1.StatefulSet, c corev1.Container, cp corev1.ContainerPort, fail func(string, ...any)) {
	for _, name := range keysOf(b.Services) {
		ls := b.Services[name]
		svc := ls.Obj
		if svc.Annotations["prometheus.io/scrape"] != "true" || !selects(svc.Spec.Selector, s.Spec.Template.Labels) {
			continue
		}
		if want := strconv.Itoa(int(cp.ContainerPort)); svc.Annotations["prometheus.io/port"] != "" && svc.Annotations["prometheus.io/port"] != want {
			fail("%s: annotation prometheus.io/port is %q, but the producer's metrics port is %s", ls.Where, svc.Annotations["prometheus.io/port"], want)
		}
		for _, sp := range svc.Spec.Ports {
			target := sp.TargetPort
			if target.Type == intstr.Int && target.IntVal == 0 {
				target = intstr.FromInt32(sp.Port)
			}
			if got, ok := resolvePort(c, target); ok && got.ContainerPort == cp.ContainerPort {
				return
			}
		}
		fail("%s: no port of the metrics Service forwards to the producer's container port %d (%q) (ports: %s)", ls.Where, cp.ContainerPort, cp.Name, describeServicePorts(svc))
		return
	}
	fail("%s: no Service with annotation prometheus.io/scrape: \"true\" selects the producer's pods (labels %v)", b.Dir, s.Spec.Template.Labels)
}

// checkWorkloads checks every StatefulSet and Service for wiring that does
// not depend on dbsync's config: selectors, the governing headless Service,
// probe ports, volume mounts, resources, and Services reaching pods.
func checkWorkloads(b *base, fail func(string, ...any)) {
	for _, name := range keysOf(b.StatefulSets) {
		ls := b.StatefulSets[name]
		s, at := ls.Obj, ls.Where
		if s.Spec.Selector == nil || !selects(s.Spec.Selector.MatchLabels, s.Spec.Template.Labels) {
			fail("%s: spec.selector.matchLabels does not match spec.template.metadata.labels", at)
		}
		if h, ok := b.Services[s.Spec.ServiceName]; !ok {
			fail("%s: spec.serviceName %q is no Service of the base (Services: %s)", at, s.Spec.ServiceName, keysOf(b.Services))
		} else if h.Obj.Spec.ClusterIP != corev1.ClusterIPNone || !selects(h.Obj.Spec.Selector, s.Spec.Template.Labels) {
			fail("%s: spec.serviceName %q must be a headless Service (clusterIP: None) selecting this StatefulSet's pods (%s)", at, s.Spec.ServiceName, h.Where)
		}
		volumes := map[string]bool{}
		for _, v := range s.Spec.Template.Spec.Volumes {
			volumes[v.Name] = true
			var kind, name string
			var items []corev1.KeyToPath
			var objs map[string]dataObject
			switch {
			case v.ConfigMap != nil:
				kind, name, items, objs = "ConfigMap", v.ConfigMap.Name, v.ConfigMap.Items, b.ConfigMaps
			case v.Secret != nil:
				kind, name, items, objs = "Secret", v.Secret.SecretName, v.Secret.Items, b.Secrets
				// Readable by the pod's group (fsGroup), not writable, nothing
				// for others; in YAML 0440 is octal.
				if m := v.Secret.DefaultMode; m == nil || *m&0o007 != 0 || *m&0o222 != 0 || *m&0o040 == 0 {
					fail("%s: volume %q: secret.defaultMode must be set without access for others, read-only and readable by the group (0440: fsGroup reads it)", at, v.Name)
				}
			default:
				continue
			}
			for _, it := range items {
				checkRef(at, fmt.Sprintf("volume %q item", v.Name), kind, name, it.Key, objs, fail)
			}
			if len(items) == 0 {
				if _, ok := objs[name]; !ok {
					fail("%s: volume %q names %s %q, which the base does not define nor the overlay generate (%ss: %s)", at, v.Name, kind, name, kind, keysOf(objs))
				}
			}
		}
		for _, t := range s.Spec.VolumeClaimTemplates {
			volumes[t.Name] = true
		}
		for _, c := range s.Spec.Template.Spec.Containers {
			cat := fmt.Sprintf("%s, container %q", at, c.Name)
			for _, m := range c.VolumeMounts {
				if !volumes[m.Name] {
					fail("%s: volumeMount %q (at %s) names no volume or volumeClaimTemplate", cat, m.Name, m.MountPath)
				}
			}
			for pname, pr := range map[string]*corev1.Probe{"livenessProbe": c.LivenessProbe, "readinessProbe": c.ReadinessProbe, "startupProbe": c.StartupProbe} {
				if pr != nil && pr.HTTPGet != nil {
					if _, ok := resolvePort(c, pr.HTTPGet.Port); !ok {
						fail("%s: %s.httpGet.port %s is not a port of the container (ports: %s)", cat, pname, pr.HTTPGet.Port.String(), describePorts(c))
					}
				}
			}
			if c.LivenessProbe == nil || c.ReadinessProbe == nil {
				fail("%s: livenessProbe and readinessProbe must both be set", cat)
			}
			if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
				fail("%s: resources need requests.cpu, requests.memory and limits.memory", cat)
			}
			for _, e := range c.Env {
				if r := e.ValueFrom; r != nil && r.SecretKeyRef != nil && (r.SecretKeyRef.Optional == nil || !*r.SecretKeyRef.Optional) {
					checkRef(cat, "env "+e.Name+" secretKeyRef", "Secret", r.SecretKeyRef.Name, r.SecretKeyRef.Key, b.Secrets, fail)
				}
				if r := e.ValueFrom; r != nil && r.ConfigMapKeyRef != nil && (r.ConfigMapKeyRef.Optional == nil || !*r.ConfigMapKeyRef.Optional) {
					checkRef(cat, "env "+e.Name+" configMapKeyRef", "ConfigMap", r.ConfigMapKeyRef.Name, r.ConfigMapKeyRef.Key, b.ConfigMaps, fail)
				}
			}
		}
	}
	for _, name := range keysOf(b.Services) {
		ls := b.Services[name]
		var pods []corev1.PodSpec
		for _, s := range b.StatefulSets {
			if selects(ls.Obj.Spec.Selector, s.Obj.Spec.Template.Labels) {
				pods = append(pods, s.Obj.Spec.Template.Spec)
			}
		}
		if len(pods) == 0 {
			fail("%s: spec.selector %v selects no pod template of the base", ls.Where, ls.Obj.Spec.Selector)
			continue
		}
		for _, sp := range ls.Obj.Spec.Ports {
			target := sp.TargetPort
			if target.Type == intstr.Int && target.IntVal == 0 {
				target = intstr.FromInt32(sp.Port)
			}
			found := false
			for _, p := range pods {
				for _, c := range p.Containers {
					if _, ok := resolvePort(c, target); ok {
						found = true
					}
				}
			}
			if !found {
				fail("%s: port %q targetPort %s is no container port of the pods it selects", ls.Where, sp.Name, target.String())
			}
		}
	}
}

// checkRef checks that a secretKeyRef/configMapKeyRef names an object of the
// base and one of its keys.
func checkRef(at, what, kind, name, key string, objs map[string]dataObject, fail func(string, ...any)) {
	o, ok := objs[name]
	if !ok {
		fail("%s: %s names %s %q, which the base does not define (%ss: %s)", at, what, kind, name, kind, keysOf(objs))
		return
	}
	if _, ok := o.Data[key]; !ok {
		fail("%s: %s names key %q, which %s %q (%s) does not have (keys: %s)", at, what, key, kind, name, o.Where, keysOf(o.Data))
	}
}

// listenPort returns the port of a host:port or :port address.
func listenPort(addr string) (int, error) {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(p)
	if err != nil || n < 1 || n > 65535 {
		return 0, fmt.Errorf("%q has no numeric port", addr)
	}
	return n, nil
}

// exposedPorts returns the ports the final stage EXPOSEs.
func exposedPorts(df *dockerfile) []int {
	var out []int
	for _, in := range df.final().all("EXPOSE") {
		for _, f := range strings.Fields(in.Args) {
			p, _, _ := strings.Cut(f, "/")
			if n, err := strconv.Atoi(p); err == nil {
				out = append(out, n)
			}
		}
	}
	return out
}

func overrideNames() string {
	var names []string
	for _, o := range config.EnvOverrides() {
		names = append(names, o.Name)
	}
	return strings.Join(names, ", ")
}

func describeMounts(c corev1.Container) string {
	var parts []string
	for _, m := range c.VolumeMounts {
		parts = append(parts, fmt.Sprintf("%s at %s", m.Name, m.MountPath))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

func describeServicePorts(s *corev1.Service) string {
	var parts []string
	for _, p := range s.Spec.Ports {
		parts = append(parts, fmt.Sprintf("%s=%d", p.Name, p.Port))
	}
	return strings.Join(parts, ", ")
}

// keysOf returns m's keys sorted, for stable messages and iteration.
func keysOf[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
