// Package logging builds the process's logrus logger from configuration and
// bridges go-mysql's log/slog output into it, so one setting controls every
// log line dbsync writes.
package logging

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/sirupsen/logrus"
	"golang.org/x/term"
)

// New returns a logger writing to out at level ("trace", "debug", "info",
// "warn", "error") in format "text" or "json". An empty format picks text;
// text is colourless unless out is a terminal. It fails on an unknown level
// or format, naming the value.
func New(level, format string, out io.Writer) (*logrus.Logger, error) {
	lvl, err := logrus.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("log level %q: %w", level, err)
	}
	log := logrus.New()
	log.SetOutput(out)
	log.SetLevel(lvl)
	switch format {
	case "", "text":
		log.SetFormatter(&logrus.TextFormatter{
			FullTimestamp: true,
			DisableColors: !isTerminal(out),
		})
	case "json":
		log.SetFormatter(&logrus.JSONFormatter{})
	default:
		return nil, fmt.Errorf("log format %q: want \"text\" or \"json\"", format)
	}
	return log, nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// Slog returns a *slog.Logger whose records go to log, with slog attributes
// turned into logrus fields. Debug-level go-mysql chatter stays at debug.
func Slog(log logrus.FieldLogger) *slog.Logger {
	return slog.New(&slogHandler{log: log})
}

type slogHandler struct {
	log   logrus.FieldLogger
	attrs []slog.Attr
	group string
}

func (h *slogHandler) Enabled(_ context.Context, level slog.Level) bool {
	if l, ok := h.log.(interface{ IsLevelEnabled(logrus.Level) bool }); ok {
		return l.IsLevelEnabled(toLogrus(level))
	}
	return true
}

func (h *slogHandler) Handle(_ context.Context, r slog.Record) error {
	fields := logrus.Fields{"component": "go-mysql"}
	add := func(a slog.Attr) bool {
		key := a.Key
		if h.group != "" {
			key = h.group + "." + key
		}
		fields[key] = fieldValue(a.Value.Resolve())
		return true
	}
	for _, a := range h.attrs {
		add(a)
	}
	r.Attrs(add)
	entry := h.log.WithFields(fields)
	switch lvl := toLogrus(r.Level); lvl {
	case logrus.ErrorLevel:
		entry.Error(r.Message)
	case logrus.WarnLevel:
		entry.Warn(r.Message)
	case logrus.InfoLevel:
		entry.Info(r.Message)
	default:
		entry.Debug(r.Message)
	}
	return nil
}

// fieldValue keeps slog's basic kinds as they are and renders anything else
// (structs holding funcs, for one) as text, so every formatter can write it.
func fieldValue(v slog.Value) any {
	switch v.Kind() {
	case slog.KindAny, slog.KindGroup, slog.KindLogValuer:
		return fmt.Sprintf("%+v", v.Any())
	}
	return v.Any()
}

func (h *slogHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(append([]slog.Attr(nil), h.attrs...), attrs...)
	return &c
}

func (h *slogHandler) WithGroup(name string) slog.Handler {
	c := *h
	if c.group != "" {
		name = c.group + "." + name
	}
	c.group = name
	return &c
}

func toLogrus(l slog.Level) logrus.Level {
	switch {
	case l >= slog.LevelError:
		return logrus.ErrorLevel
	case l >= slog.LevelWarn:
		return logrus.WarnLevel
	case l >= slog.LevelInfo:
		return logrus.InfoLevel
	}
	return logrus.DebugLevel
}
