package decode

import (
	"reflect"
	"strings"
)

// TableName returns the table a struct type maps to: the result of its
// TableName() string method when it has one (gorm's convention; a value or a
// pointer receiver both count, the method is called on a zero value), else
// SnakeCase of the type's name ("HoleComment" -> "hole_comment"). Unlike gorm
// it never pluralizes. A pointer type is looked through to its element; a nil
// type or an unnamed type without the method yields "".
func TableName(t reflect.Type) string {
	if t == nil {
		return ""
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	// reflect.New gives a non-nil *T whose method set holds both value and
	// pointer receiver methods.
	if tn, ok := reflect.New(t).Interface().(interface{ TableName() string }); ok {
		return tn.TableName()
	}
	return SnakeCase(t.Name())
}

// SnakeCase converts a Go identifier to snake_case exactly the way gorm's
// default NamingStrategy names columns: common initialisms are first folded
// to title case (the golint list: ID, URL, HTTP, JSON, UUID, ...), then an
// underscore goes before each upper-case letter that starts a word.
// "ID" -> "id", "HoleId" -> "hole_id", "CreatedAt" -> "created_at",
// "ImageURL" -> "image_url", "UserIDs" -> "user_ids". It never fails; "" stays "".
func SnakeCase(s string) string {
	if s == "" {
		return ""
	}
	value := foldInitialisms(s)

	// A faithful port of gorm's schema.NamingStrategy.toDBName.
	var (
		buf                            strings.Builder
		lastCase, nextCase, nextNumber bool // upper case == true
		curCase                        = value[0] <= 'Z' && value[0] >= 'A'
	)
	buf.Grow(len(value) + 4)
	for i, v := range value[:len(value)-1] {
		nextCase = value[i+1] <= 'Z' && value[i+1] >= 'A'
		nextNumber = value[i+1] >= '0' && value[i+1] <= '9'
		if curCase {
			if lastCase && (nextCase || nextNumber) {
				buf.WriteRune(v + 32)
			} else {
				if i > 0 && value[i-1] != '_' && value[i+1] != '_' {
					buf.WriteByte('_')
				}
				buf.WriteRune(v + 32)
			}
		} else {
			buf.WriteRune(v)
		}
		lastCase = curCase
		curCase = nextCase
	}
	if curCase {
		if !lastCase && len(value) > 1 {
			buf.WriteByte('_')
		}
		buf.WriteByte(value[len(value)-1] + 32)
	} else {
		buf.WriteByte(value[len(value)-1])
	}
	return buf.String()
}

// foldInitialisms replaces every common initialism in s by its title-case
// form ("ImageURL" -> "ImageUrl"), scanning left to right like gorm's
// strings.Replacer: at each position the first initialism of the list that
// matches wins (so "HTTPS" becomes "HttpS", as in gorm).
func foldInitialisms(s string) string {
	var b strings.Builder
	changed := false
	for i := 0; i < len(s); {
		if n := initialismAt(s[i:]); n > 0 {
			if !changed {
				b.Grow(len(s))
				b.WriteString(s[:i])
				changed = true
			}
			b.WriteByte(s[i])
			b.WriteString(strings.ToLower(s[i+1 : i+n]))
			i += n
			continue
		}
		if changed {
			b.WriteByte(s[i])
		}
		i++
	}
	if !changed {
		return s
	}
	return b.String()
}

// initialismAt returns the length of the first initialism (in gorm's list
// order) that s starts with, or 0.
func initialismAt(s string) int {
	if len(s) < 2 || s[0] < 'A' || s[0] > 'Z' {
		return 0
	}
	for _, in := range [...]string{"API", "ASCII", "CPU", "CSS", "DNS", "EOF", "GUID", "HTML", "HTTP", "HTTPS",
		"ID", "IP", "JSON", "LHS", "QPS", "RAM", "RHS", "RPC", "SLA", "SMTP", "SSH", "TLS", "TTL", "UID", "UI",
		"UUID", "URI", "URL", "UTF8", "VM", "XML", "XSRF", "XSS"} {
		if strings.HasPrefix(s, in) {
			return len(in)
		}
	}
	return 0
}

// fieldName works out the column a struct field maps to from its tags:
// a db tag first ("-" skips), then gorm's column setting (gorm:"-" or
// "-:all" or "->:false" skips), then a json tag ("-" skips); the options after
// a comma are ignored. explicit reports whether a tag named the column (an
// empty name means "use SnakeCase"). embedded and prefix come from gorm's
// embedded and embeddedPrefix settings.
func fieldName(sf reflect.StructField) (name string, skip, explicit, embedded bool, prefix string) {
	gorm := gormSettings(sf.Tag.Get("gorm"))
	_, embedded = gorm["EMBEDDED"]
	prefix = gorm["EMBEDDEDPREFIX"]

	if tag, ok := sf.Tag.Lookup("db"); ok {
		n, _, _ := strings.Cut(tag, ",")
		n = strings.TrimSpace(n)
		if n == "-" {
			return "", true, false, embedded, prefix
		}
		if n != "" {
			return n, false, true, embedded, prefix
		}
	}
	if v, ok := gorm["-"]; ok {
		switch strings.ToLower(strings.TrimSpace(v)) {
		case "-", "all":
			return "", true, false, embedded, prefix
		}
	}
	if v, ok := gorm["->"]; ok && strings.EqualFold(strings.TrimSpace(v), "false") {
		return "", true, false, embedded, prefix
	}
	if n := strings.TrimSpace(gorm["COLUMN"]); n != "" {
		return n, false, true, embedded, prefix
	}
	if tag, ok := sf.Tag.Lookup("json"); ok {
		if tag == "-" {
			return "", true, false, embedded, prefix
		}
		n, _, _ := strings.Cut(tag, ",")
		if n != "" {
			return n, false, true, embedded, prefix
		}
	}
	return "", false, false, embedded, prefix
}

// gormSettings parses a gorm struct tag ("column:name;type:text;-:all")
// the way gorm's schema.ParseTagSetting does: settings split on ';' (a
// backslash escapes one), keys upper-cased, a key without a value maps to
// itself.
func gormSettings(tag string) map[string]string {
	if tag == "" {
		return nil
	}
	settings := map[string]string{}
	names := strings.Split(tag, ";")
	for i := 0; i < len(names); i++ {
		j := i
		for len(names[j]) > 0 && names[j][len(names[j])-1] == '\\' && i+1 < len(names) {
			i++
			names[j] = names[j][:len(names[j])-1] + ";" + names[i]
			names[i] = ""
		}
		k, v, hasValue := strings.Cut(names[j], ":")
		k = strings.TrimSpace(strings.ToUpper(k))
		switch {
		case hasValue:
			settings[k] = v
		case k != "":
			settings[k] = k
		}
	}
	return settings
}
