package testenv

import (
	"os"
	"strings"
	"testing"
)

// ReadSQLFile reads a file of SQL statements separated by lines holding only
// ";" (lines starting with "--" are comments) and returns the statements.
func ReadSQLFile(t testing.TB, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, stmt := range strings.Split(string(b), "\n;\n") {
		var lines []string
		for _, l := range strings.Split(stmt, "\n") {
			if !strings.HasPrefix(l, "--") {
				lines = append(lines, l)
			}
		}
		if s := strings.TrimSpace(strings.Join(lines, "\n")); s != "" {
			out = append(out, s)
		}
	}
	return out
}
