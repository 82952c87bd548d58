package redact

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/sirupsen/logrus"
)

// minSecretLen is the shortest value a Secrets hides wherever it appears:
// hiding every "a" of every log line would make logs unreadable, and a
// secret that short protects nothing.
const minSecretLen = 3

// Secrets hides a fixed set of secret values (passwords, tokens), and the
// credentials inside URLs, wherever they appear in text: the one redactor
// behind log lines, errors, HTTP bodies and the doctor's output. It is
// immutable and safe for concurrent use; the zero value hides URL
// credentials only.
type Secrets struct {
	r *strings.Replacer
}

// NewSecrets returns a Secrets hiding values (empty ones and ones shorter
// than 3 bytes are ignored).
func NewSecrets(values ...string) *Secrets {
	vs := slices.DeleteFunc(slices.Clone(values), func(v string) bool { return len(v) < minSecretLen })
	// Longer first, so a secret containing another is hidden whole.
	slices.SortFunc(vs, func(a, b string) int { return len(b) - len(a) })
	vs = slices.Compact(vs)
	if len(vs) == 0 {
		return &Secrets{}
	}
	pairs := make([]string, 0, 2*len(vs))
	for _, v := range vs {
		pairs = append(pairs, v, Mask)
	}
	return &Secrets{r: strings.NewReplacer(pairs...)}
}

// Text returns t with every secret and every URL's credentials hidden.
func (s *Secrets) Text(t string) string {
	if s != nil && s.r != nil {
		t = s.r.Replace(t)
	}
	return Text(t)
}

// Error returns err with its message hidden like Text; errors.Is and
// errors.As still see err.
func (s *Secrets) Error(err error) error { return Error(err, s.Text) }

// Hook returns a logrus hook that hides secrets in every entry's message
// and in its string, error and Stringer fields.
func (s *Secrets) Hook() logrus.Hook { return secretsHook{s} }

type secretsHook struct{ s *Secrets }

func (secretsHook) Levels() []logrus.Level { return logrus.AllLevels }

func (h secretsHook) Fire(e *logrus.Entry) error {
	e.Message = h.s.Text(e.Message)
	for k, v := range e.Data {
		switch v := v.(type) {
		case string:
			e.Data[k] = h.s.Text(v)
		case error:
			e.Data[k] = h.s.Error(v)
		case fmt.Stringer:
			if text := v.String(); h.s.Text(text) != text {
				e.Data[k] = h.s.Text(text)
			}
		}
	}
	return nil
}

// Writer returns a writer that hides secrets in everything written to w;
// each Write is cleaned on its own, so callers write whole lines (logrus
// and fmt do).
func (s *Secrets) Writer(w io.Writer) io.Writer { return secretsWriter{s: s, w: w} }

type secretsWriter struct {
	s *Secrets
	w io.Writer
}

func (sw secretsWriter) Write(p []byte) (int, error) {
	if _, err := io.WriteString(sw.w, sw.s.Text(string(p))); err != nil {
		return 0, err
	}
	return len(p), nil
}
