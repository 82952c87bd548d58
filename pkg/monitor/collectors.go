package monitor

import "github.com/prometheus/client_golang/prometheus"

// factory registers collectors on one registry.
type factory struct{ reg *prometheus.Registry }

func newFactory(reg *prometheus.Registry) factory { return factory{reg: reg} }

func (f factory) counter(name, help string) prometheus.Counter {
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	f.reg.MustRegister(c)
	return c
}

func (f factory) counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	f.reg.MustRegister(c)
	return c
}

func (f factory) gauge(name, help string) prometheus.Gauge {
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
	f.reg.MustRegister(g)
	return g
}

func (f factory) gaugeFunc(name, help string, fn func() float64) {
	f.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, fn))
}

func (f factory) histogram(name, help string, buckets []float64) prometheus.Histogram {
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets})
	f.reg.MustRegister(h)
	return h
}

// optionalGaugeFunc registers a gauge whose sample is exposed only while fn
// reports its value as known.
func (f factory) optionalGaugeFunc(name, help string, fn func() (float64, bool)) {
	f.reg.MustRegister(optionalGauge{desc: prometheus.NewDesc(name, help, nil, nil), value: fn})
}

// optionalGauge is a gauge without a sample while its value is unknown, so
// that neither a graph nor an alert takes a made-up value for it.
type optionalGauge struct {
	desc  *prometheus.Desc
	value func() (float64, bool)
}

func (g optionalGauge) Describe(ch chan<- *prometheus.Desc) { ch <- g.desc }

func (g optionalGauge) Collect(ch chan<- prometheus.Metric) {
	if v, ok := g.value(); ok {
		ch <- prometheus.MustNewConstMetric(g.desc, prometheus.GaugeValue, v)
	}
}
