package doctor

import (
	"context"
	"fmt"
	"strings"

	"github.com/dbsync/dbsync/pkg/binlog"
)

// account is the connected account quoted for a GRANT statement.
func account(ctx context.Context, src *binlog.Source) string {
	user, host, err := src.CurrentUser(ctx)
	if err != nil {
		return "the dbsync user"
	}
	if host == "" {
		return "'" + sqlEscape(user) + "'"
	}
	return "'" + sqlEscape(user) + "'@'" + sqlEscape(host) + "'"
}

func sqlEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s)
}

// privilege is one privilege dbsync needs, with the names SHOW GRANTS may
// print for it.
type privilege struct {
	name    string
	aliases []string
	why     string
}

var needed = []privilege{
	{"REPLICATION SLAVE", []string{"REPLICATION SLAVE", "REPLICATION REPLICA"}, "to read the binlog"},
	{"REPLICATION CLIENT", []string{"REPLICATION CLIENT", "BINLOG MONITOR"}, "for SHOW BINARY LOGS and SHOW MASTER STATUS"},
	{"SELECT", []string{"SELECT"}, "to read table definitions"},
}

// checkGrants parses SHOW GRANTS for the privileges dbsync needs.
func checkGrants(ctx context.Context, s server) Finding {
	src := s.src
	grants, err := src.Grants(ctx)
	if err != nil {
		return Finding{Check: CheckGrants, Status: WARN, Detail: fmt.Sprintf("cannot read the grants: %v", err),
			Fix: fmt.Sprintf("make sure %s has REPLICATION SLAVE, REPLICATION CLIENT, SELECT ON *.*", account(ctx, src))}
	}
	global := map[string]bool{}
	selectOn := []string{}
	var roles []string
	for _, g := range grants {
		privs, on, ok := parseGrant(g)
		if !ok {
			continue
		}
		if on == "" {
			roles = append(roles, privs...)
			continue
		}
		for _, p := range privs {
			if on == "*.*" {
				global[p] = true
			} else if p == "SELECT" || p == "ALL PRIVILEGES" || p == "ALL" {
				selectOn = append(selectOn, on)
			}
		}
	}
	all := global["ALL PRIVILEGES"] || global["ALL"]
	var missing, notes []string
	for _, p := range needed {
		has := all
		for _, a := range p.aliases {
			has = has || global[a]
		}
		if has {
			continue
		}
		if p.name == "SELECT" && len(selectOn) > 0 {
			notes = append(notes, fmt.Sprintf("SELECT only on %s: tables elsewhere cannot be decoded", strings.Join(selectOn, ", ")))
			continue
		}
		missing = append(missing, p.name)
		notes = append(notes, fmt.Sprintf("%s missing (needed %s)", p.name, p.why))
	}
	acct := account(ctx, src)
	if len(missing) == 0 && len(notes) == 0 {
		return Finding{Check: CheckGrants, Status: OK, Detail: fmt.Sprintf("%s has REPLICATION SLAVE, REPLICATION CLIENT and SELECT on *.*", acct)}
	}
	fixPrivs := missing
	if len(missing) == 0 {
		fixPrivs = []string{"SELECT"}
	}
	fix := fmt.Sprintf("GRANT %s ON *.* TO %s", strings.Join(fixPrivs, ", "), acct)
	detail := fmt.Sprintf("%s: %s", acct, strings.Join(notes, "; "))
	if len(missing) == 0 || len(roles) > 0 {
		// Partial SELECT, or privileges that may come from a role SHOW
		// GRANTS does not expand: dbsync may still work.
		if len(roles) > 0 {
			detail += fmt.Sprintf(" (the account also has role(s) %s, whose privileges are not checked)", strings.Join(roles, ", "))
		}
		return Finding{Check: CheckGrants, Status: WARN, Detail: detail, Fix: fix}
	}
	return Finding{Check: CheckGrants, Status: FAIL, Detail: detail, Fix: fix}
}

// parseGrant splits one SHOW GRANTS line into its privileges (upper case,
// column lists dropped) and its object ("*.*", "`shop`.*"). A role grant
// ("GRANT `r` TO ...") returns the role names and an empty object.
func parseGrant(g string) (privs []string, on string, ok bool) {
	rest, found := strings.CutPrefix(strings.TrimSpace(g), "GRANT ")
	if !found {
		return nil, "", false
	}
	// Split at top-level " ON " / " TO " (column lists are in parentheses).
	depth, end, isRole := 0, -1, false
	for i := 0; i < len(rest); i++ {
		switch rest[i] {
		case '(':
			depth++
		case ')':
			depth--
		case '`', '\'', '"':
			if j := strings.IndexByte(rest[i+1:], rest[i]); j >= 0 {
				i += j + 1
			}
		case ' ':
			if depth == 0 && strings.HasPrefix(rest[i:], " ON ") {
				end = i
			} else if depth == 0 && strings.HasPrefix(rest[i:], " TO ") {
				end, isRole = i, true
			}
		}
		if end >= 0 {
			break
		}
	}
	if end < 0 {
		return nil, "", false
	}
	for _, p := range splitTop(rest[:end]) {
		if k := strings.IndexByte(p, '('); k >= 0 {
			p = p[:k]
		}
		p = strings.TrimSpace(p)
		if !isRole {
			p = strings.ToUpper(strings.Join(strings.Fields(p), " "))
		}
		if p != "" {
			privs = append(privs, p)
		}
	}
	if isRole {
		return privs, "", true
	}
	obj := strings.TrimSpace(rest[end+len(" ON "):])
	if k := strings.Index(obj, " TO "); k >= 0 {
		obj = obj[:k]
	}
	obj = strings.TrimPrefix(strings.TrimPrefix(obj, "TABLE "), "PROCEDURE ")
	return privs, strings.TrimSpace(obj), true
}

// splitTop splits s at commas outside parentheses.
func splitTop(s string) []string {
	var out []string
	depth, start := 0, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '(':
			depth++
		case ')':
			depth--
		case ',':
			if depth == 0 {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	return append(out, s[start:])
}
