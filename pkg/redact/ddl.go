package redact

import (
	"regexp"
	"strings"
)

// credentialLiteral finds a string literal that may hold a password in a
// statement: after IDENTIFIED BY / AS / USING / BY PASSWORD, inside
// PASSWORD('...') or OLD_PASSWORD('...'), or assigned with "=" (SET
// PASSWORD = '...', MASTER_PASSWORD='...').
var credentialLiteral = regexp.MustCompile(`(?i)(\b(?:BY|AS|USING|PASSWORD|IDENTIFIED)\s*(?:\(\s*)?|=\s*(?:PASSWORD\s*\(\s*)?)('(?:[^'\\]|\\.|'')*'|"(?:[^"\\]|\\.|"")*")`)

// Statement returns an SQL statement with every literal that may be a
// password replaced by '***' (CREATE/ALTER USER ... IDENTIFIED BY,
// IDENTIFIED WITH/VIA ... AS/USING, PASSWORD('...'), SET PASSWORD, GRANT
// ... IDENTIFIED BY, MASTER_PASSWORD=...), for a debug log line.
func Statement(sql string) string {
	return credentialLiteral.ReplaceAllString(sql, "${1}'"+Mask+"'")
}

// DDLSummary describes a statement by kind and object only, for an info log
// line: "CREATE TABLE", "shop.orders"; "CREATE USER", "'bob'@'%'". The
// statement text (which may hold other accounts' passwords) is left out.
type DDLSummary struct {
	Kind   string
	Object string
}

// leadingWords are the words that may follow a statement's verb before its
// object type ("CREATE OR REPLACE TEMPORARY TABLE IF NOT EXISTS t").
var leadingWords = map[string]bool{"OR": true, "REPLACE": true, "TEMPORARY": true, "ONLINE": true, "OFFLINE": true,
	"IGNORE": true, "UNIQUE": true, "FULLTEXT": true, "SPATIAL": true, "DEFINER": true, "ALGORITHM": true, "SQL": true,
	"SECURITY": true, "AGGREGATE": true}

// objectTypes are the words naming what a statement acts on.
var objectTypes = map[string]bool{"TABLE": true, "TABLES": true, "DATABASE": true, "SCHEMA": true, "INDEX": true, "VIEW": true,
	"USER": true, "ROLE": true, "TRIGGER": true, "PROCEDURE": true, "FUNCTION": true, "EVENT": true, "SEQUENCE": true,
	"SERVER": true, "PACKAGE": true}

// SummarizeDDL returns the kind and object of a statement logged on its own
// (DDL, GRANT, SET PASSWORD, ...).
func SummarizeDDL(sql string) DDLSummary {
	words := tokens(sql, 16)
	if len(words) == 0 {
		return DDLSummary{Kind: "(empty)"}
	}
	verb := strings.ToUpper(words[0])
	switch verb {
	case "GRANT", "REVOKE", "SET":
		// GRANT ... TO 'user', SET PASSWORD FOR 'user': the object is the
		// account after TO/FROM/FOR.
		kind := verb
		if verb == "SET" && len(words) > 1 {
			kind += " " + strings.ToUpper(words[1])
		}
		for i, w := range words {
			if u := strings.ToUpper(w); (u == "TO" || u == "FROM" || u == "FOR") && i+1 < len(words) {
				return DDLSummary{Kind: kind, Object: words[i+1]}
			}
		}
		return DDLSummary{Kind: kind}
	}
	i := 1
	for i < len(words) && (leadingWords[strings.ToUpper(words[i])] || strings.Contains(words[i], "=")) { // DEFINER=`u`@`h`
		i++
	}
	if i < len(words) && objectTypes[strings.ToUpper(words[i])] {
		kind := verb + " " + strings.ToUpper(words[i])
		i++
		for i < len(words) && (strings.EqualFold(words[i], "IF") || strings.EqualFold(words[i], "NOT") || strings.EqualFold(words[i], "EXISTS")) {
			i++
		}
		if i < len(words) {
			return DDLSummary{Kind: kind, Object: words[i]}
		}
		return DDLSummary{Kind: kind}
	}
	return DDLSummary{Kind: verb}
}

// tokens splits the first max words of sql at white space and before "(",
// keeping quoted names (`a b`, 'u'@'h') whole and dropping comments.
func tokens(sql string, max int) []string {
	var out []string
	s := strings.TrimSpace(sql)
	for len(s) > 0 && len(out) < max {
		switch {
		case strings.HasPrefix(s, "/*"):
			end := strings.Index(s, "*/")
			if end < 0 {
				return out
			}
			s = strings.TrimSpace(s[end+2:])
			continue
		case strings.HasPrefix(s, "--") || strings.HasPrefix(s, "#"):
			end := strings.IndexByte(s, '\n')
			if end < 0 {
				return out
			}
			s = strings.TrimSpace(s[end+1:])
			continue
		}
		n := 0
		for n < len(s) && !isSpace(s[n]) && s[n] != '(' && s[n] != ';' && s[n] != ',' {
			if q := s[n]; q == '`' || q == '\'' || q == '"' {
				if end := strings.IndexByte(s[n+1:], q); end >= 0 {
					n += end + 2
					continue
				}
			}
			n++
		}
		if n == 0 {
			s = strings.TrimSpace(s[1:])
			continue
		}
		out = append(out, s[:n])
		s = strings.TrimSpace(s[n:])
	}
	return out
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
