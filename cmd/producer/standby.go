package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/sirupsen/logrus"

	"github.com/dbsync/dbsync/pkg/config"
	"github.com/dbsync/dbsync/pkg/storage"
	"github.com/dbsync/dbsync/pkg/wiring"
)

// producerRole is the checkpoint lease owner's role.
const producerRole = "dbsync producer"

// openActive opens the producer's components. With HA.Standby, while
// another replica holds the checkpoint lease, it stands by instead of
// failing: it checks that the source answers, serves /livez, /readyz
// ("standby: ...") and /metrics (dbsync_ha_active 0), and tries to take the
// lease every quarter of HA.LeaseTTL until it gets it (tookOver) or ctx is
// done (ctx's error).
func openActive(ctx context.Context, cfg *config.Config, clean func(string) string, log logrus.FieldLogger) (parts *wiring.Components, tookOver bool, err error) {
	parts, err = wiring.Open(ctx, cfg, producerRole, log)
	if err == nil || !cfg.HA.Standby || !errors.Is(err, storage.ErrHeld) {
		return parts, false, err
	}
	src, serr := wiring.ConnectSource(ctx, cfg, log)
	if serr != nil {
		return nil, false, serr
	}
	src.Close()
	status := "standby: " + clean(err.Error())
	stop := serveStandby(cfg, status, log)
	defer stop()
	log.WithField("lease", clean(err.Error())).Info("standby: another replica holds the checkpoint lease; taking over when it lapses")
	began := time.Now()
	interval := max(cfg.HA.LeaseTTL.Duration()/4, 250*time.Millisecond)
	for {
		select {
		case <-ctx.Done():
			return nil, false, ctx.Err()
		case <-time.After(interval):
		}
		parts, err = wiring.Open(ctx, cfg, producerRole, log)
		switch {
		case err == nil:
			log.WithField("waited", time.Since(began).Round(time.Millisecond).String()).Info("standby: took over the checkpoint lease; streaming")
			return parts, true, nil
		case errors.Is(err, storage.ErrHeld):
		case ctx.Err() != nil:
			return nil, false, ctx.Err()
		default:
			log.WithError(err).Warn("standby: cannot open the checkpoint store; trying again")
		}
	}
}

// serveStandby serves the operations listener of a standby until stop.
func serveStandby(cfg *config.Config, status string, log logrus.FieldLogger) (stop func()) {
	if cfg.HTTP.Disabled || cfg.HTTP.Listen == "" {
		return func() {}
	}
	reg := prometheus.NewRegistry()
	active := prometheus.NewGauge(prometheus.GaugeOpts{Name: "dbsync_ha_active", Help: "1 while this replica streams (holds the checkpoint lease), 0 while it stands by."})
	reg.MustRegister(active)
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/livez", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, status) })
	srv := &http.Server{Addr: cfg.HTTP.Listen, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.WithError(err).Warn("standby: operations listener")
		}
	}()
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
	}
}
