package envelope

import (
	"errors"
	"strings"
	"testing"
)

const complete = `{"v":1,"id":"bin.000001:4:0","source":{"name":"s","server_id":1,"file":"bin.000001","pos":4,"row":0,"ts":"2026-11-21T19:00:00Z"},"db":"shop","table":"orders","type":"insert","pk":["id"],"after":{"id":1}}`

func TestDecodeChecksTheEnvelope(t *testing.T) {
	if _, err := Decode([]byte(complete)); err != nil {
		t.Fatalf("a complete envelope: %v", err)
	}
	for _, tc := range []struct{ name, data, want string }{
		{"garbage", "\x00\x01not json", "invalid character"},
		{"version 2", strings.Replace(complete, `"v":1`, `"v":2`, 1), "version 2 is not supported"},
		{"no db", strings.Replace(complete, `"db":"shop",`, ``, 1), `no "db"`},
		{"no table", strings.Replace(complete, `"table":"orders",`, ``, 1), `no "table"`},
		{"no type", strings.Replace(complete, `"type":"insert",`, ``, 1), `no "type"`},
		{"unknown type", strings.Replace(complete, `"insert"`, `"upsert"`, 1), `unknown type "upsert"`},
		{"insert without after", strings.Replace(complete, `,"after":{"id":1}`, ``, 1), `an insert without "after"`},
		{"delete without before", strings.Replace(complete, `"insert"`, `"delete"`, 1), `a delete without "before"`},
		{"no coordinate", strings.Replace(complete, `"file":"bin.000001",`, ``, 1), `no "source.file"`},
	} {
		_, err := Decode([]byte(tc.data))
		var de *DecodeError
		if !errors.As(err, &de) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want a DecodeError containing %q", tc.name, err, tc.want)
		}
	}
}

func TestSourceOf(t *testing.T) {
	src, err := SourceOf([]byte(complete))
	if err != nil || src.File != "bin.000001" || src.Pos != 4 {
		t.Fatalf("envelope: %+v, %v", src, err)
	}
	marker := `{"v":1,"kind":"unpublishable","id":"bin.000001:9:0","source":{"name":"s","file":"bin.000001","pos":9,"row":0,"ts":"2026-11-21T19:00:00Z"},"db":"shop","table":"docs","type":"insert","subject":"p.shop.docs","reason":"too large","size":9}`
	if src, err := SourceOf([]byte(marker)); err != nil || src.Pos != 9 {
		t.Fatalf("marker: %+v, %v", src, err)
	}
	if u, err := DecodeUnpublishable([]byte(marker)); err != nil || u.Subject != "p.shop.docs" {
		t.Fatalf("marker: %+v, %v", u, err)
	}
	for _, foreign := range []string{`{"hello":"world"}`, `plain text`, `{"v":1,"kind":"other","id":"x","source":{"file":"f"}}`} {
		if _, err := SourceOf([]byte(foreign)); err == nil {
			t.Errorf("SourceOf(%s) accepted a message dbsync did not write", foreign)
		}
	}
}
