package client

import (
	"strings"
	"testing"
)

// TestJSDurableName: names are valid JetStream consumer names, stable, and
// distinct for distinct (ClientID or QueueGroup, subject), even when
// sanitising maps the inputs to the same text.
func TestJSDurableName(t *testing.T) {
	cases := []struct{ clientID, group, subject string }{
		{"billing", "", "shop.orders"},
		{"billing", "", "shop.items"},
		{"billing", "", "shop_orders"},
		{"bill.ing", "", "shop.orders"},
		{"bill_ing", "", "shop.orders"},
		{"bill ing*>/\\", "", "pre.shop.orders"},
		{"other", "billing", "shop.orders"}, // group "billing" is not client "billing"
		{"another", "billing", "shop.orders"},
		{strings.Repeat("x", 400), "", strings.Repeat("y.", 300)},
	}
	seen := map[string]int{}
	for i, c := range cases {
		name := jsDurableName(c.clientID, c.group, c.subject)
		if name != jsDurableName(c.clientID, c.group, c.subject) {
			t.Fatalf("case %d: name not stable", i)
		}
		if strings.ContainsAny(name, " \t\r\n\f.*>/\\") || len(name) > 255 || name == "" {
			t.Errorf("case %d: invalid name %q (%d bytes)", i, name, len(name))
		}
		if j, dup := seen[name]; dup {
			// Members of one group share the consumer whatever their ClientID.
			if !(c.group != "" && cases[j].group == c.group && cases[j].subject == c.subject) {
				t.Errorf("cases %d and %d share name %q", j, i, name)
			}
		}
		seen[name] = i
	}
	if jsDurableName("other", "billing", "shop.orders") != jsDurableName("another", "billing", "shop.orders") {
		t.Error("members of a queue group get different consumers")
	}
	if got := jsDurableName("billing", "", "shop.orders"); !strings.HasPrefix(got, "dbsync_c_billing_shop_orders_") {
		t.Errorf("name %q is not readable", got)
	}
}
