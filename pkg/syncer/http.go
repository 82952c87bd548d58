package syncer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/sirupsen/logrus"
)

// Handler serves /metrics, /livez (200 while the process runs) and
// /readyz (200 "ok", or 503 listing why the tables are not kept in sync
// now, with every secret hidden).
func (s *Syncer) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/livez", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
		defer cancel()
		if err := s.Ready(ctx); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, err.Error())
			return
		}
		fmt.Fprintln(w, "ok")
	})
	return mux
}

// Run keeps the tables in sync until ctx is done, serving Handler on
// cfg.HTTP.Listen. It fails when the sync cannot start (see Open) or the
// listener cannot be opened.
func Run(ctx context.Context, cfg *Config, log logrus.FieldLogger) error {
	s, err := Open(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer func() {
		if err := s.Close(); err != nil {
			log.WithError(s.clean(err)).Warn("closing the sync")
		}
	}()
	if cfg.HTTP.Listen == "-" {
		<-ctx.Done()
		return nil
	}
	ln, err := net.Listen("tcp", cfg.HTTP.Listen)
	if err != nil {
		return fmt.Errorf("HTTP.Listen %s: %w", cfg.HTTP.Listen, err)
	}
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	log.WithField("addr", ln.Addr().String()).Info("serving /metrics, /livez and /readyz")
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
	case err := <-served:
		if !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("HTTP server on %s: %w", cfg.HTTP.Listen, err)
		}
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdown)
	return nil
}
