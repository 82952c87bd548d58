package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"image/color"
	"io"
	"math"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/promql"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// recordedRun is a producer's /metrics scraped at intervals, as
// test/observability records it.
type recordedRun struct {
	Title      string  `json:"title"`
	Job        string  `json:"job"`
	Instance   string  `json:"instance"`
	IntervalMS int64   `json:"interval_ms"`
	Events     []event `json:"events"`
	Scrapes    []struct {
		TimeMS int64 `json:"t_ms"`
		// OK is false when the scrape failed (the producer did not
		// answer); Text is the exposition otherwise.
		OK   bool   `json:"ok"`
		Text string `json:"text"`
	} `json:"scrapes"`
}

// event is a stretch of the run the picture marks ("broker stopped").
type event struct {
	Label   string `json:"label"`
	StartMS int64  `json:"start_ms"`
	EndMS   int64  `json:"end_ms"`
}

// dashboard is the part of a Grafana dashboard the renderer reads.
type dashboard struct {
	Panels []dashPanel `json:"panels"`
}

type dashPanel struct {
	Type        string      `json:"type"`
	Title       string      `json:"title"`
	Panels      []dashPanel `json:"panels"`
	FieldConfig struct {
		Defaults struct {
			Unit string `json:"unit"`
		} `json:"defaults"`
	} `json:"fieldConfig"`
	Targets []struct {
		Expr         string `json:"expr"`
		LegendFormat string `json:"legendFormat"`
	} `json:"targets"`
}

// render plots dashboard panels over a recorded run into a PNG: the
// recorded scrapes become series as Prometheus would store them (with job,
// instance and up, and staleness markers when a scrape fails), and each
// panel's queries are evaluated over them with Prometheus's engine.
func render(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("render", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dashPath := fs.String("dashboard", "", "Grafana dashboard JSON")
	runPath := fs.String("run", "", "recorded run (JSON)")
	panelList := fs.String("panels", "", "titles of the panels to draw, separated by ';', in order")
	cols := fs.Int("cols", 2, "panels per row")
	rateInterval := fs.Duration("rate-interval", 0, "what $__rate_interval stands for (default four scrape intervals)")
	width := fs.Int("width", 1800, "picture width in pixels")
	out := fs.String("out", "", "PNG to write")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dashPath == "" || *runPath == "" || *panelList == "" || *out == "" {
		return errors.New("-dashboard, -run, -panels and -out are required")
	}
	var dash dashboard
	if err := readJSON(*dashPath, &dash); err != nil {
		return err
	}
	var run recordedRun
	if err := readJSON(*runPath, &run); err != nil {
		return err
	}
	if len(run.Scrapes) < 2 || run.IntervalMS <= 0 {
		return fmt.Errorf("%s: want at least two scrapes and interval_ms", *runPath)
	}
	store, err := loadRun(&run)
	if err != nil {
		return err
	}
	byTitle := map[string]dashPanel{}
	var walk func([]dashPanel)
	walk = func(ps []dashPanel) {
		for _, p := range ps {
			byTitle[p.Title] = p
			walk(p.Panels)
		}
	}
	walk(dash.Panels)
	ri := *rateInterval
	if ri == 0 {
		ri = 4 * time.Duration(run.IntervalMS) * time.Millisecond
	}
	start := time.UnixMilli(run.Scrapes[0].TimeMS)
	end := time.UnixMilli(run.Scrapes[len(run.Scrapes)-1].TimeMS)
	step := time.Duration(run.IntervalMS) * time.Millisecond
	engine := promql.NewEngine(promql.EngineOpts{MaxSamples: 5_000_000, Timeout: time.Minute, LookbackDelta: 5 * time.Minute, Parser: promqlParser()})
	defer engine.Close()

	var plots []*plot.Plot
	for _, title := range strings.Split(*panelList, ";") {
		p, ok := byTitle[strings.TrimSpace(title)]
		if !ok {
			return fmt.Errorf("%s has no panel %q", *dashPath, title)
		}
		var series []namedSeries
		for _, t := range p.Targets {
			expr := strings.NewReplacer("$__rate_interval", model.Duration(ri).String(), "$__interval", model.Duration(step).String(),
				"$job", ".*", "$instance", ".*").Replace(t.Expr)
			got, err := rangeQuery(engine, store, expr, start, end, step)
			if err != nil {
				return fmt.Errorf("panel %q: %s: %w", p.Title, expr, err)
			}
			for _, s := range got {
				series = append(series, namedSeries{name: legend(t.LegendFormat, s.Metric), points: s.Floats})
			}
		}
		pl, err := panelPlot(p, series, start, end, step.Milliseconds(), run.Events)
		if err != nil {
			return err
		}
		plots = append(plots, pl)
	}
	return writePicture(plots, *cols, vg.Length(*width)*vg.Inch/96, run.Title, *out)
}

func readJSON(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// loadRun stores the run's scrapes as Prometheus would: every sample with
// the target's job and instance, up 1 or 0 per scrape, and a staleness
// marker for each series a scrape no longer returns (all of them when the
// scrape failed).
func loadRun(run *recordedRun) (*memStorage, error) {
	store := newMemStorage()
	target := labels.FromStrings("job", run.Job, "instance", run.Instance)
	up := labels.FromStrings(labels.MetricName, "up", "job", run.Job, "instance", run.Instance)
	live := map[uint64]labels.Labels{}
	for _, sc := range run.Scrapes {
		now := map[uint64]labels.Labels{}
		if sc.OK {
			parser := expfmt.NewTextParser(model.UTF8Validation)
			families, err := parser.TextToMetricFamilies(strings.NewReader(sc.Text))
			if err != nil {
				return nil, fmt.Errorf("scrape at %d: %w", sc.TimeMS, err)
			}
			for name, mf := range families {
				for _, m := range mf.GetMetric() {
					for _, s := range samplesOf(name, mf.GetType(), m) {
						b := labels.NewBuilder(target)
						b.Set(labels.MetricName, s.name)
						for _, lp := range m.GetLabel() {
							b.Set(lp.GetName(), lp.GetValue())
						}
						for k, v := range s.extra {
							b.Set(k, v)
						}
						lset := b.Labels()
						store.add(lset, sc.TimeMS, s.value)
						now[lset.Hash()] = lset
					}
				}
			}
		}
		for h, lset := range live {
			if _, ok := now[h]; !ok {
				store.add(lset, sc.TimeMS, math.Float64frombits(value.StaleNaN))
			}
		}
		live = now
		store.add(up, sc.TimeMS, map[bool]float64{true: 1, false: 0}[sc.OK])
	}
	return store, nil
}

type flatSample struct {
	name  string
	extra map[string]string
	value float64
}

// samplesOf flattens one metric of a family into the series the text
// format implies (a histogram into _bucket, _sum and _count).
func samplesOf(name string, typ dto.MetricType, m *dto.Metric) []flatSample {
	switch typ {
	case dto.MetricType_COUNTER:
		return []flatSample{{name: name, value: m.GetCounter().GetValue()}}
	case dto.MetricType_GAUGE:
		return []flatSample{{name: name, value: m.GetGauge().GetValue()}}
	case dto.MetricType_HISTOGRAM:
		h := m.GetHistogram()
		out := []flatSample{{name: name + "_sum", value: h.GetSampleSum()}, {name: name + "_count", value: float64(h.GetSampleCount())}}
		hasInf := false
		for _, b := range h.GetBucket() {
			hasInf = hasInf || math.IsInf(b.GetUpperBound(), 1)
			out = append(out, flatSample{name: name + "_bucket", extra: map[string]string{"le": model.FloatString(b.GetUpperBound()).String()}, value: float64(b.GetCumulativeCount())})
		}
		if !hasInf {
			out = append(out, flatSample{name: name + "_bucket", extra: map[string]string{"le": "+Inf"}, value: float64(h.GetSampleCount())})
		}
		return out
	case dto.MetricType_SUMMARY:
		s := m.GetSummary()
		return []flatSample{{name: name + "_sum", value: s.GetSampleSum()}, {name: name + "_count", value: float64(s.GetSampleCount())}}
	}
	return []flatSample{{name: name, value: m.GetUntyped().GetValue()}}
}

func rangeQuery(engine *promql.Engine, store *memStorage, expr string, start, end time.Time, step time.Duration) (promql.Matrix, error) {
	ctx := context.Background()
	q, err := engine.NewRangeQuery(ctx, store, nil, expr, start, end, step)
	if err != nil {
		return nil, err
	}
	defer q.Close()
	res := q.Exec(ctx)
	if res.Err != nil {
		return nil, res.Err
	}
	m, err := res.Matrix()
	if err != nil {
		return nil, err
	}
	// The result's memory goes back to the engine at Close: keep a copy.
	out := make(promql.Matrix, len(m))
	for i, s := range m {
		out[i] = promql.Series{Metric: s.Metric, Floats: slices.Clone(s.Floats)}
	}
	sort.Sort(out)
	return out, nil
}

var legendLabel = regexp.MustCompile(`\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}`)

// legend fills in a Grafana legend format ("{{db}}.{{table}}").
func legend(format string, l labels.Labels) string {
	if format == "" {
		return l.String()
	}
	return strings.TrimSpace(legendLabel.ReplaceAllStringFunc(format, func(m string) string {
		return l.Get(legendLabel.FindStringSubmatch(m)[1])
	}))
}

type namedSeries struct {
	name   string
	points []promql.FPoint
}

// panelPlot draws one panel: lines for a time series, bands for a state
// timeline; the run's events shaded behind.
func panelPlot(p dashPanel, series []namedSeries, start, end time.Time, stepMS int64, events []event) (*plot.Plot, error) {
	pl := plot.New()
	pl.Title.Text = p.Title
	pl.Title.TextStyle.Font.Size = vg.Points(15)
	pl.X.Label.Text = "time into the run (m:ss)"
	pl.X.Tick.Marker = minuteTicks{}
	minutes := func(ms int64) float64 { return float64(ms-start.UnixMilli()) / 60000 }
	pl.X.Min, pl.X.Max = 0, minutes(end.UnixMilli())
	pl.Add(plotter.NewGrid())
	pl.Add(eventBands{events: events, x: minutes})
	pl.Legend.Top = true
	pl.Legend.Left = true
	pl.Legend.YOffs = -vg.Points(16) // below the events' names
	pl.Legend.TextStyle.Font.Size = vg.Points(10)
	if p.Type == "state-timeline" {
		return statePlot(pl, series, minutes, stepMS)
	}
	unit, scale := unitLabel(p.FieldConfig.Defaults.Unit, series)
	pl.Y.Label.Text = unit
	pl.Y.Min = 0
	for i, s := range series {
		var runs []plotter.XYs
		var cur plotter.XYs
		lastT := int64(math.MinInt64)
		for _, pt := range s.points {
			if math.IsNaN(pt.F) || math.IsInf(pt.F, 0) {
				continue // undefined there (a quantile of nothing): a gap
			}
			// A gap longer than two steps (a failed scrape, no data) breaks the line.
			if len(cur) > 0 && pt.T-lastT > 2*stepMS {
				runs = append(runs, cur)
				cur = nil
			}
			cur = append(cur, plotter.XY{X: minutes(pt.T), Y: pt.F / scale})
			lastT = pt.T
		}
		runs = append(runs, cur)
		style := draw.LineStyle{Color: palette[i%len(palette)], Width: vg.Points(1.6)}
		for j, r := range runs {
			if len(r) == 0 {
				continue
			}
			l, err := plotter.NewLine(r)
			if err != nil {
				return nil, err
			}
			l.LineStyle = style
			pl.Add(l)
			if j == 0 {
				pl.Legend.Add(s.name, l)
			}
			if len(r) == 1 {
				sc, _ := plotter.NewScatter(r)
				sc.GlyphStyle.Color, sc.GlyphStyle.Radius, sc.GlyphStyle.Shape = style.Color, vg.Points(2), draw.CircleGlyph{}
				pl.Add(sc)
			}
		}
	}
	if len(series) == 0 {
		pl.Legend.Add("no data")
	}
	if pl.Y.Max <= 0 {
		pl.Y.Max = 1
	}
	pl.Y.Max *= 1.1 + 0.1*float64(len(series)) // room for the legend
	return pl, nil
}

// unitLabel returns the axis label for a Grafana unit and the factor the
// values are divided by to read well.
func unitLabel(unit string, series []namedSeries) (string, float64) {
	peak := 0.0
	for _, s := range series {
		for _, p := range s.points {
			if !math.IsNaN(p.F) && !math.IsInf(p.F, 0) {
				peak = max(peak, p.F)
			}
		}
	}
	switch unit {
	case "bytes":
		switch {
		case peak >= 1<<30:
			return "GiB", 1 << 30
		case peak >= 1<<20:
			return "MiB", 1 << 20
		case peak >= 1<<10:
			return "KiB", 1 << 10
		}
		return "bytes", 1
	case "s":
		if peak > 0 && peak < 0.5 {
			return "milliseconds", 1e-3
		}
		return "seconds", 1
	case "rowsps":
		return "rows/s", 1
	case "ops":
		return "per second", 1
	case "percentunit":
		return "%", 0.01
	}
	return "", 1
}

// statePlot draws each series as a band of colour per value: green where
// the state is good, red where it is not, nothing without data.
func statePlot(pl *plot.Plot, series []namedSeries, minutes func(int64) float64, stepMS int64) (*plot.Plot, error) {
	var names []string
	for i, s := range series {
		badWhen := 0.0
		if strings.HasPrefix(s.name, "stalled") {
			badWhen = 1
		}
		pl.Add(stateBand{row: float64(len(series) - 1 - i), points: s.points, bad: badWhen, x: minutes, step: stepMS})
		names = append(names, s.name)
	}
	var ticks []plot.Tick
	for i, n := range names {
		ticks = append(ticks, plot.Tick{Value: float64(len(names) - 1 - i), Label: n})
	}
	pl.Y.Tick.Marker = plot.ConstantTicks(ticks)
	pl.Y.Min, pl.Y.Max = -0.6, float64(len(names))+0.1
	pl.X.Label.Text += "; green: connected / streaming, red: down / STALLED, blank: no scrape"
	return pl, nil
}

type stateBand struct {
	row    float64
	points []promql.FPoint
	bad    float64
	x      func(int64) float64
	step   int64
}

func (b stateBand) Plot(c draw.Canvas, pl *plot.Plot) {
	tx, ty := pl.Transforms(&c)
	for i, pt := range b.points {
		next := pt.T + b.step
		if i+1 < len(b.points) && b.points[i+1].T-pt.T <= 2*b.step {
			next = b.points[i+1].T
		}
		clr := color.Color(color.RGBA{R: 0x37, G: 0xa2, B: 0x4b, A: 0xff})
		if pt.F == b.bad {
			clr = color.RGBA{R: 0xd6, G: 0x2d, B: 0x20, A: 0xff}
		}
		x0, x1 := tx(b.x(pt.T)), tx(b.x(next))
		y0, y1 := ty(b.row-0.35), ty(b.row+0.35)
		c.FillPolygon(clr, c.ClipPolygonXY([]vg.Point{{X: x0, Y: y0}, {X: x1, Y: y0}, {X: x1, Y: y1}, {X: x0, Y: y1}}))
	}
}

// eventBands shades the run's events and names them at the top.
type eventBands struct {
	events []event
	x      func(int64) float64
}

func (e eventBands) Plot(c draw.Canvas, pl *plot.Plot) {
	tx, _ := pl.Transforms(&c)
	for _, ev := range e.events {
		x0, x1 := tx(e.x(ev.StartMS)), tx(e.x(ev.EndMS))
		pts := []vg.Point{{X: x0, Y: c.Min.Y}, {X: x1, Y: c.Min.Y}, {X: x1, Y: c.Max.Y}, {X: x0, Y: c.Max.Y}}
		c.FillPolygon(color.NRGBA{R: 0xff, G: 0xc8, B: 0x60, A: 0x50}, c.ClipPolygonXY(pts))
		sty := text.Style{Color: color.RGBA{R: 0x80, G: 0x50, B: 0x00, A: 0xff}, Font: font.From(plot.DefaultFont, vg.Points(10)),
			XAlign: draw.XCenter, YAlign: draw.YTop, Handler: plot.DefaultTextHandler}
		c.FillText(sty, vg.Point{X: (x0 + x1) / 2, Y: c.Max.Y - vg.Points(2)}, ev.Label)
	}
}

// minuteTicks marks the x axis (minutes) every 30 seconds, labelled m:ss.
type minuteTicks struct{}

func (minuteTicks) Ticks(lo, hi float64) []plot.Tick {
	var ticks []plot.Tick
	for half := math.Ceil(lo * 2); half <= hi*2; half++ {
		ticks = append(ticks, plot.Tick{Value: half / 2, Label: fmt.Sprintf("%d:%02d", int(half)/2, int(half)%2*30)})
	}
	return ticks
}

var palette = []color.Color{
	color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}, color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff},
	color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff}, color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff},
	color.RGBA{R: 0x94, G: 0x67, B: 0xbd, A: 0xff}, color.RGBA{R: 0x8c, G: 0x56, B: 0x4b, A: 0xff},
	color.RGBA{R: 0xe3, G: 0x77, B: 0xc2, A: 0xff}, color.RGBA{R: 0x7f, G: 0x7f, B: 0x7f, A: 0xff},
	color.RGBA{R: 0xbc, G: 0xbd, B: 0x22, A: 0xff}, color.RGBA{R: 0x17, G: 0xbe, B: 0xcf, A: 0xff},
}

// writePicture lays the plots out cols to a row under a title and writes
// the PNG.
func writePicture(plots []*plot.Plot, cols int, width vg.Length, title, out string) error {
	rows := (len(plots) + cols - 1) / cols
	tileH := width / vg.Length(cols) * 0.5
	header := vg.Points(40)
	img := vgimg.NewWith(vgimg.UseWH(width, tileH*vg.Length(rows)+header), vgimg.UseDPI(96))
	dc := draw.New(img)
	dc.SetColor(color.White)
	dc.Fill(dc.Rectangle.Path())
	if title != "" {
		sty := text.Style{Color: color.Black, Font: font.From(plot.DefaultFont, vg.Points(18)),
			XAlign: draw.XCenter, YAlign: draw.YCenter, Handler: plot.DefaultTextHandler}
		dc.FillText(sty, vg.Point{X: width / 2, Y: dc.Max.Y - header/2}, title)
	}
	grid := make([][]*plot.Plot, rows)
	for i := range grid {
		grid[i] = make([]*plot.Plot, cols)
		for j := range cols {
			if k := i*cols + j; k < len(plots) {
				grid[i][j] = plots[k]
			}
		}
	}
	tiles := draw.Tiles{Rows: rows, Cols: cols, PadX: vg.Points(12), PadY: vg.Points(12), PadTop: vg.Points(4), PadBottom: vg.Points(4),
		PadLeft: vg.Points(4), PadRight: vg.Points(12)}
	canvases := plot.Align(grid, tiles, draw.Crop(dc, 0, 0, 0, -header))
	for i := range grid {
		for j := range grid[i] {
			if grid[i][j] != nil {
				grid[i][j].Draw(canvases[i][j])
			}
		}
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", out, err)
	}
	return f.Close()
}
