package observability

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Run is a producer's /metrics scraped at intervals, in the form
// `promtools render` reads.
type Run struct {
	Title      string   `json:"title"`
	Job        string   `json:"job"`
	Instance   string   `json:"instance"`
	IntervalMS int64    `json:"interval_ms"`
	Events     []Event  `json:"events"`
	Scrapes    []Scrape `json:"scrapes"`
}

// Scrape is one GET /metrics: the exposition, or OK false when the
// producer did not answer within the scrape timeout.
type Scrape struct {
	TimeMS int64  `json:"t_ms"`
	OK     bool   `json:"ok"`
	Text   string `json:"text,omitempty"`
}

// Event is a stretch of the run to mark in the picture.
type Event struct {
	Label   string `json:"label"`
	StartMS int64  `json:"start_ms"`
	EndMS   int64  `json:"end_ms"`
}

// ScrapeMetrics fetches http://addr/metrics, failing after timeout like a
// Prometheus scrape.
func ScrapeMetrics(ctx context.Context, addr string, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	return string(body), nil
}

// MetricFamilies parses a text exposition.
func MetricFamilies(text string) (map[string]*dto.MetricFamily, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(strings.NewReader(text))
}

// Recording scrapes a producer every interval until Stop.
type Recording struct {
	mu     sync.Mutex
	run    Run
	cancel context.CancelFunc
	done   chan struct{}
}

// Record starts scraping http://addr/metrics every interval (each scrape
// times out after the interval, as Prometheus's would).
func Record(addr, title string, interval time.Duration) *Recording {
	ctx, cancel := context.WithCancel(context.Background())
	r := &Recording{
		run:    Run{Title: title, Job: "dbsync", Instance: addr, IntervalMS: interval.Milliseconds()},
		cancel: cancel,
		done:   make(chan struct{}),
	}
	go func() {
		defer close(r.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			at := time.Now()
			text, err := ScrapeMetrics(ctx, addr, interval*9/10)
			if ctx.Err() != nil {
				return
			}
			r.mu.Lock()
			r.run.Scrapes = append(r.run.Scrapes, Scrape{TimeMS: at.UnixMilli(), OK: err == nil, Text: text})
			r.mu.Unlock()
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return r
}

// Mark records an event from now until the returned func is called.
func (r *Recording) Mark(label string) (end func()) {
	start := time.Now()
	return func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.run.Events = append(r.run.Events, Event{Label: label, StartMS: start.UnixMilli(), EndMS: time.Now().UnixMilli()})
	}
}

// Scrapes returns how many scrapes were taken so far and how many of them
// the producer answered.
func (r *Recording) Scrapes() (taken, answered int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.run.Scrapes {
		if s.OK {
			answered++
		}
	}
	return len(r.run.Scrapes), answered
}

// Stop ends the scraping and returns the run.
func (r *Recording) Stop() Run {
	r.cancel()
	<-r.done
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.run
}

// WriteRun writes run as JSON to path.
func WriteRun(run Run, path string) error {
	data, err := json.Marshal(run)
	if err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o644)
}
