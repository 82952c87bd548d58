package main

import (
	"context"
	"slices"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/annotations"
)

// memSeries is one series of float samples in time order.
type memSeries struct {
	labels  labels.Labels
	samples []floatSample
}

// memStorage is an in-memory storage.Queryable over float series, what the
// PromQL engine reads the synthetic and recorded series from.
type memStorage struct {
	series map[uint64]*memSeries
}

func newMemStorage() *memStorage { return &memStorage{series: map[uint64]*memSeries{}} }

// add appends a sample to the series lset (samples must come in time order
// per series).
func (s *memStorage) add(lset labels.Labels, t int64, v float64) {
	h := lset.Hash()
	ms, ok := s.series[h]
	if !ok {
		ms = &memSeries{labels: lset}
		s.series[h] = ms
	}
	ms.samples = append(ms.samples, floatSample{t: t, f: v})
}

// Querier returns a querier over the samples within [mint, maxt].
func (s *memStorage) Querier(mint, maxt int64) (storage.Querier, error) {
	return memQuerier{s: s, mint: mint, maxt: maxt}, nil
}

type memQuerier struct {
	s          *memStorage
	mint, maxt int64
}

func (q memQuerier) Select(_ context.Context, _ bool, _ *storage.SelectHints, matchers ...*labels.Matcher) storage.SeriesSet {
	var out []storage.Series
	for _, ms := range q.s.series {
		if !matchesAll(ms.labels, matchers) {
			continue
		}
		var in []chunks.Sample
		for _, smp := range ms.samples {
			if smp.t >= q.mint && smp.t <= q.maxt {
				in = append(in, smp)
			}
		}
		if len(in) > 0 {
			out = append(out, storage.NewListSeries(ms.labels, in))
		}
	}
	slices.SortFunc(out, func(a, b storage.Series) int { return labels.Compare(a.Labels(), b.Labels()) })
	return &sliceSeriesSet{series: out, i: -1}
}

func matchesAll(lset labels.Labels, matchers []*labels.Matcher) bool {
	for _, m := range matchers {
		if !m.Matches(lset.Get(m.Name)) {
			return false
		}
	}
	return true
}

func (memQuerier) LabelValues(context.Context, string, *storage.LabelHints, ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return nil, nil, nil
}

func (memQuerier) LabelNames(context.Context, *storage.LabelHints, ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return nil, nil, nil
}

func (memQuerier) Close() error { return nil }

type sliceSeriesSet struct {
	series []storage.Series
	i      int
}

func (s *sliceSeriesSet) Next() bool                      { s.i++; return s.i < len(s.series) }
func (s *sliceSeriesSet) At() storage.Series              { return s.series[s.i] }
func (*sliceSeriesSet) Err() error                        { return nil }
func (*sliceSeriesSet) Warnings() annotations.Annotations { return nil }

// floatSample is a chunks.Sample holding a float value.
type floatSample struct {
	t int64
	f float64
}

func (s floatSample) T() int64                    { return s.t }
func (floatSample) ST() int64                     { return 0 }
func (s floatSample) F() float64                  { return s.f }
func (floatSample) H() *histogram.Histogram       { return nil }
func (floatSample) FH() *histogram.FloatHistogram { return nil }
func (floatSample) Type() chunkenc.ValueType      { return chunkenc.ValFloat }
func (s floatSample) Copy() chunks.Sample         { return s }
