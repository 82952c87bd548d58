package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dbsync/dbsync/pkg/config"
	"github.com/dbsync/dbsync/pkg/producer"
)

// snapshotCommand asks the running producer, through its operations
// listener on this host, to start, cancel or report a snapshot.
func snapshotCommand(ctx context.Context, sub string, args []string, cfg *config.Config, stdout, stderr io.Writer) int {
	if cfg.HTTP.Disabled || cfg.HTTP.Listen == "" {
		fmt.Fprintln(stderr, "dbsync: the snapshot commands reach the running producer through its operations listener, which HTTP.Disabled turns off; enable it (HTTP.Listen)")
		return 2
	}
	base, err := localURL(cfg.HTTP.Listen)
	if err != nil {
		fmt.Fprintf(stderr, "dbsync: HTTP.Listen %q: %v\n", cfg.HTTP.Listen, err)
		return 2
	}
	var method, path string
	switch sub {
	case "start":
		if len(args) == 0 {
			fmt.Fprintln(stderr, "usage: producer snapshot start [-config PATH] db.table [db.table ...]")
			return 2
		}
		method, path = http.MethodPost, "start?tables="+url.QueryEscape(strings.Join(args, ","))
	case "cancel":
		method, path = http.MethodPost, "cancel"
	case "status":
		method, path = http.MethodGet, "status"
	default:
		fmt.Fprintf(stderr, "dbsync: unknown snapshot command %q: use start, status or cancel\n", sub)
		return 2
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, base+strings.TrimPrefix(producer.SnapshotPath, "/")+path, nil)
	if err != nil {
		fmt.Fprintf(stderr, "dbsync: %v\n", err)
		return 1
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "dbsync: no running producer answers at %s (is it running on this host?): %v\n", base, err)
		return 1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "dbsync: snapshot %s refused: %s\n", sub, strings.TrimSpace(string(body)))
		return 1
	}
	if sub == "cancel" {
		var r map[string]string
		_ = json.Unmarshal(body, &r)
		fmt.Fprintf(stdout, "snapshot %s: cancelling (its progress leaves the checkpoint at the next transaction boundary)\n", r["cancelled"])
		return 0
	}
	var st producer.SnapshotStatus
	if err := json.Unmarshal(body, &st); err != nil {
		fmt.Fprintf(stderr, "dbsync: unexpected answer: %v\n", err)
		return 1
	}
	printSnapshotStatus(stdout, st)
	return 0
}

// localURL is the operations listener's URL on this host.
func localURL(listen string) (string, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", err
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/", nil
}

func printSnapshotStatus(w io.Writer, st producer.SnapshotStatus) {
	switch {
	case st.ID == "":
		fmt.Fprintln(w, "no snapshot running")
	case st.Waiting && !st.Running:
		fmt.Fprintf(w, "snapshot %s: waiting to begin\n", st.ID)
	default:
		fmt.Fprintf(w, "snapshot %s: running since %s\n", st.ID, st.Started.Format(time.RFC3339))
	}
	if len(st.Tables) > 0 {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "TABLE\tROWS\tESTIMATED\tPERCENT\tCHUNKS\tSTATE\t")
		for _, t := range st.Tables {
			state, pct := "waiting", "-"
			switch {
			case t.Done:
				state, pct = "done", "100%"
			case t.Chunks > 0:
				state = "reading"
			}
			if !t.Done && t.Estimated > 0 {
				pct = fmt.Sprintf("%d%%", min(99, 100*t.Rows/t.Estimated))
			}
			fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%d\t%s\t\n", t.Table, t.Rows, t.Estimated, pct, t.Chunks, state)
		}
		tw.Flush()
	}
	if st.Last != "" {
		fmt.Fprintf(w, "last finished: %s\n", st.Last)
	}
}
