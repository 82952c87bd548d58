package deploy

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"regexp"
	"strconv"
	"strings"
	"unicode"
)

// instruction is one Dockerfile instruction with its continuation lines
// joined: Cmd is upper-case ("RUN"), Args the rest, Line where it starts.
type instruction struct {
	Cmd  string
	Args string
	Line int
}

// stage is one build stage: its FROM image, its "AS" name and its
// instructions after FROM.
type stage struct {
	From  string
	Name  string
	Line  int
	Instr []instruction
}

// all returns the stage's instructions of kind cmd, in order.
func (s *stage) all(cmd string) []instruction {
	var out []instruction
	for _, in := range s.Instr {
		if in.Cmd == cmd {
			out = append(out, in)
		}
	}
	return out
}

// last returns the stage's last instruction of kind cmd (the effective one
// for USER, ENTRYPOINT, CMD, WORKDIR), and whether there is one.
func (s *stage) last(cmd string) (instruction, bool) {
	all := s.all(cmd)
	if len(all) == 0 {
		return instruction{}, false
	}
	return all[len(all)-1], true
}

// dockerfile is a parsed Dockerfile: its stages in order, the last being
// the image that is shipped.
type dockerfile struct {
	Path   string
	Stages []*stage
}

func (d *dockerfile) final() *stage { return d.Stages[len(d.Stages)-1] }

// stageByName returns the stage named name ("AS name") or with that index.
func (d *dockerfile) stageByName(name string) *stage {
	for i, s := range d.Stages {
		if strings.EqualFold(s.Name, name) || strconv.Itoa(i) == name {
			return s
		}
	}
	return nil
}

// parseDockerfile reads the Dockerfile at p: comments and blank lines are
// dropped, backslash continuations joined, instructions grouped by stage.
// It fails on an instruction other than ARG before the first FROM, a FROM
// without an image, or a file without stages.
func parseDockerfile(p string) (*dockerfile, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("open Dockerfile: %w", err)
	}
	defer f.Close()
	d := &dockerfile{Path: p}
	var (
		cur     strings.Builder
		start   int
		lineNum int
	)
	flush := func() error {
		text := strings.TrimSpace(cur.String())
		cur.Reset()
		if text == "" {
			return nil
		}
		cmd, args, _ := strings.Cut(text, " ")
		in := instruction{Cmd: strings.ToUpper(cmd), Args: strings.TrimSpace(args), Line: start}
		if in.Cmd == "FROM" {
			fields := strings.Fields(in.Args)
			var img []string
			for _, f := range fields {
				if !strings.HasPrefix(f, "--") {
					img = append(img, f)
				}
			}
			if len(img) == 0 {
				return fmt.Errorf("%s:%d: FROM without an image", p, start)
			}
			st := &stage{From: img[0], Line: start}
			if len(img) == 3 && strings.EqualFold(img[1], "AS") {
				st.Name = img[2]
			}
			d.Stages = append(d.Stages, st)
			return nil
		}
		if len(d.Stages) == 0 {
			if in.Cmd == "ARG" {
				return nil
			}
			return fmt.Errorf("%s:%d: %s before the first FROM", p, start, in.Cmd)
		}
		s := d.Stages[len(d.Stages)-1]
		s.Instr = append(s.Instr, in)
		return nil
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	continuing := false
	for sc.Scan() {
		lineNum++
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") || (trimmed == "" && continuing) {
			continue // comments (also inside continuations) and parser directives
		}
		if trimmed == "" {
			continue
		}
		if !continuing {
			start = lineNum
		}
		if strings.HasSuffix(trimmed, `\`) {
			cur.WriteString(strings.TrimSuffix(trimmed, `\`))
			cur.WriteString(" ")
			continuing = true
			continue
		}
		cur.WriteString(trimmed)
		continuing = false
		if err := flush(); err != nil {
			return nil, err
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	if continuing {
		return nil, fmt.Errorf("%s: the last instruction ends with a line continuation", p)
	}
	if len(d.Stages) == 0 {
		return nil, fmt.Errorf("%s: no FROM instruction", p)
	}
	return d, nil
}

// execForm decodes an exec-form (JSON array) ENTRYPOINT or CMD; a shell-form
// one is an error saying why that matters.
func execForm(in instruction) ([]string, error) {
	var words []string
	if err := json.Unmarshal([]byte(in.Args), &words); err != nil || len(words) == 0 {
		return nil, fmt.Errorf("line %d: %s %s is not exec form (a non-empty JSON array such as [\"/producer\"]); shell form runs /bin/sh -c as PID 1, which does not forward SIGTERM to the producer", in.Line, in.Cmd, in.Args)
	}
	return words, nil
}

// goBuild is one `go build` command found in a RUN instruction.
type goBuild struct {
	Line   int
	Env    []string // NAME=value assignments before `go`
	Args   []string // the words after `go`: "build", flags, packages
	Output string   // the -o value
	Pkg    string   // the package built (the last argument)
}

var assignment = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*=`)

// goBuilds returns every `go build` command in the RUN instructions of s,
// with its environment assignments and -o output. A RUN line whose shell
// syntax the small splitter cannot reproduce (expansions, pipes) is an
// error.
func goBuilds(s *stage) ([]goBuild, error) {
	var out []goBuild
	for _, in := range s.all("RUN") {
		if !strings.Contains(in.Args, "go build") {
			continue
		}
		cmds, err := shellCommands(in.Args)
		if err != nil {
			return nil, fmt.Errorf("line %d: RUN %s: %w", in.Line, in.Args, err)
		}
		for _, words := range cmds {
			i := 0
			var env []string
			for i < len(words) && assignment.MatchString(words[i]) {
				env = append(env, words[i])
				i++
			}
			if len(words)-i < 2 || words[i] != "go" || words[i+1] != "build" {
				continue
			}
			b := goBuild{Line: in.Line, Env: env, Args: append([]string(nil), words[i+1:]...)}
			for j, a := range b.Args {
				if a == "-o" && j+1 < len(b.Args) {
					b.Output = b.Args[j+1]
				} else if v, ok := strings.CutPrefix(a, "-o="); ok {
					b.Output = v
				}
			}
			b.Pkg = b.Args[len(b.Args)-1]
			out = append(out, b)
		}
	}
	return out, nil
}

// envValue returns the value of name among NAME=value assignments.
func envValue(env []string, name string) (string, bool) {
	for _, kv := range env {
		if k, v, _ := strings.Cut(kv, "="); k == name {
			return v, true
		}
	}
	return "", false
}

// withOutput returns the build's arguments with the -o value replaced by
// dir/<base name of the original output>, and that new path.
func (b goBuild) withOutput(dir string) ([]string, string) {
	out := dir + "/" + path.Base(b.Output)
	args := append([]string(nil), b.Args...)
	for j, a := range args {
		if a == "-o" && j+1 < len(args) {
			args[j+1] = out
		} else if strings.HasPrefix(a, "-o=") {
			args[j] = "-o=" + out
		}
	}
	return args, out
}

// shellCommands splits a /bin/sh command line into simple commands (at
// unquoted &&, || and ;), each a list of words with quotes removed the way
// the shell removes them. Expansions ($, backquotes), pipes, redirections
// and background jobs are errors: the test could not reproduce them.
func shellCommands(s string) ([][]string, error) {
	var (
		cmds    [][]string
		words   []string
		cur     strings.Builder
		inWord  bool
		rs      = []rune(s)
		endWord = func() {
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		}
		endCmd = func() {
			endWord()
			if len(words) > 0 {
				cmds = append(cmds, words)
			}
			words = nil
		}
	)
	for i := 0; i < len(rs); i++ {
		c := rs[i]
		switch {
		case unicode.IsSpace(c):
			endWord()
		case c == '\'':
			inWord = true
			j := i + 1
			for j < len(rs) && rs[j] != '\'' {
				cur.WriteRune(rs[j])
				j++
			}
			if j == len(rs) {
				return nil, fmt.Errorf("unterminated single quote")
			}
			i = j
		case c == '"':
			inWord = true
			j := i + 1
			for ; j < len(rs) && rs[j] != '"'; j++ {
				switch rs[j] {
				case '$', '`':
					return nil, fmt.Errorf("shell expansion (%q) inside double quotes is not supported by the test's splitter", rs[j])
				case '\\':
					if j+1 < len(rs) && strings.ContainsRune("$`\"\\\n", rs[j+1]) {
						j++
					}
				}
				cur.WriteRune(rs[j])
			}
			if j == len(rs) {
				return nil, fmt.Errorf("unterminated double quote")
			}
			i = j
		case c == '\\':
			if i+1 < len(rs) {
				i++
				inWord = true
				cur.WriteRune(rs[i])
			}
		case c == '&' || c == '|':
			if i+1 < len(rs) && rs[i+1] == c {
				endCmd()
				i++
				continue
			}
			return nil, fmt.Errorf("%q (pipe or background job) is not supported by the test's splitter", c)
		case c == ';':
			endCmd()
		case c == '$' || c == '`' || c == '<' || c == '>':
			return nil, fmt.Errorf("%q (expansion or redirection) is not supported by the test's splitter", c)
		default:
			inWord = true
			cur.WriteRune(c)
		}
	}
	endCmd()
	return cmds, nil
}

// parseUser splits a USER value "uid[:gid]" and requires a numeric,
// non-zero uid (Kubernetes' runAsNonRoot can only verify a numeric one).
func parseUser(v string) (int64, error) {
	u, _, _ := strings.Cut(strings.TrimSpace(v), ":")
	uid, err := strconv.ParseInt(u, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("USER %q is not a numeric uid; use e.g. 65532 so Kubernetes' runAsNonRoot can verify it", v)
	}
	if uid == 0 {
		return 0, fmt.Errorf("USER %q is root; use a non-root uid such as 65532", v)
	}
	return uid, nil
}

// versionNumbers returns the leading dotted numbers of s ("1.26-bookworm"
// -> [1 26], "1.26.8" -> [1 26 8]).
func versionNumbers(s string) []int {
	m := regexp.MustCompile(`^(\d+(?:\.\d+)*)`).FindString(s)
	var out []int
	for _, p := range strings.Split(m, ".") {
		if n, err := strconv.Atoi(p); err == nil {
			out = append(out, n)
		}
	}
	return out
}
