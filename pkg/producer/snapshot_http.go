package producer

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/dbsync/dbsync/pkg/binlog"
)

// SnapshotPath is where the operations listener serves the snapshot
// commands: POST SnapshotPath+"start?tables=db.t1,db.t2", POST
// SnapshotPath+"cancel", GET SnapshotPath+"status".
const SnapshotPath = "/snapshot/"

// SnapshotHandler serves the snapshot commands. They change what the
// producer publishes, so they answer only requests from the loopback
// interface: "kubectl exec ... producer snapshot start" inside the pod,
// never another pod or a port-forward's remote caller.
func (p *Producer) SnapshotHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !fromLoopback(r) {
			http.Error(w, "snapshot commands are accepted only from the producer's own host (run \"producer snapshot ...\" inside its pod)", http.StatusForbidden)
			return
		}
		fail := func(msg string, code int) {
			if p.opts.HTTP.Redact != nil {
				msg = p.opts.HTTP.Redact(msg)
			}
			http.Error(w, msg, code)
		}
		w.Header().Set("Content-Type", "application/json")
		switch strings.TrimPrefix(r.URL.Path, SnapshotPath) {
		case "status":
			_ = json.NewEncoder(w).Encode(p.snap.status())
		case "start":
			if r.Method != http.MethodPost {
				http.Error(w, "use POST", http.StatusMethodNotAllowed)
				return
			}
			tables, err := p.parseSnapshotTables(r.URL.Query().Get("tables"))
			if err == nil {
				_, err = p.checkPlans(r.Context(), tables)
			}
			if err != nil {
				fail(err.Error(), http.StatusBadRequest)
				return
			}
			s := newSnapshot(tables)
			if err := p.snap.request(s); err != nil {
				fail(err.Error(), http.StatusConflict)
				return
			}
			p.log.WithFields(logrus.Fields{"snapshot": s.ID, "tables": tableList(s)}).Info("snapshot requested")
			_ = json.NewEncoder(w).Encode(p.snap.status())
		case "cancel":
			if r.Method != http.MethodPost {
				http.Error(w, "use POST", http.StatusMethodNotAllowed)
				return
			}
			id, err := p.snap.cancel()
			if err != nil {
				fail(err.Error(), http.StatusConflict)
				return
			}
			p.log.WithField("snapshot", id).Info("snapshot cancellation requested")
			_ = json.NewEncoder(w).Encode(map[string]string{"cancelled": id})
		default:
			http.NotFound(w, r)
		}
	})
}

// parseSnapshotTables reads "db.t1,db.t2" into tables the producer
// publishes (Tables.Include and Exclude).
func (p *Producer) parseSnapshotTables(list string) ([][2]string, error) {
	var out [][2]string
	for _, name := range strings.Split(list, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		db, table, ok := strings.Cut(name, ".")
		if !ok || db == "" || table == "" {
			return nil, fmt.Errorf("table %q: name it as database.table", name)
		}
		if p.opts.Snapshot.Include != nil && !p.opts.Snapshot.Include(db, table) {
			return nil, fmt.Errorf("table %s is not published (Tables.Include/Exclude): a snapshot of it would publish rows whose changes are not", binlog.TablePattern(db, table))
		}
		out = append(out, [2]string{db, table})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("name the tables to snapshot, as database.table")
	}
	return out, nil
}

func fromLoopback(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
