package client_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/dbsync/dbsync/pkg/client"
	"github.com/dbsync/dbsync/pkg/envelope"
)

// ShopShopOrder names its table.
type ShopOrder struct {
	ID     int64  `db:"id"`
	Status string `db:"status"`
}

func (ShopOrder) TableName() string { return "shop.orders" }

// Hole names only its table (no database).
type Hole struct {
	ID int64 `db:"id"`
}

func (Hole) TableName() string { return "holes" }

// Plain has no TableName method.
type Plain struct {
	ID int64 `db:"id"`
}

func changeOf(db, table string) []byte {
	return []byte(`{"v":1,"id":"bin.000001:4:0","source":{"name":"s","server_id":1,"file":"bin.000001","pos":4,"row":0,"ts":"2026-11-21T19:00:00Z"},` +
		`"db":"` + db + `","table":"` + table + `","type":"insert","pk":["id"],"after":{"id":7,"status":"paid","total":"1.00"}}`)
}

// TestBuildAndDecodeCheckTheTable: an envelope of another table than the
// struct names is an error naming both, not a half-filled struct; a struct
// that names no table decodes any table, unless DecodeOptions.Database
// gives its database.
func TestBuildAndDecodeCheckTheTable(t *testing.T) {
	var before, after Hole
	err := client.Build(&before, &after, changeOf("shop", "orders"))
	var tm *client.TableMismatchError
	if !errors.As(err, &tm) || !strings.Contains(err.Error(), "shop.orders") || !strings.Contains(err.Error(), "holes") {
		t.Fatalf("Build of shop.orders into Hole: %v, want a TableMismatchError naming both", err)
	}
	if after.ID != 0 {
		t.Fatalf("Build filled the struct of another table: %+v", after)
	}
	if err := client.Build(&before, &after, changeOf("any", "holes")); err != nil || after.ID != 7 {
		t.Fatalf("Build of a holes envelope: %v, %+v", err, after)
	}
	if _, err := client.Decode[ShopOrder](changeOf("blog", "orders"), client.DecodeOptions{}); !errors.As(err, &tm) {
		t.Fatalf("Decode of blog.orders into ShopOrder (shop.orders): %v", err)
	}
	if ch, err := client.Decode[ShopOrder](changeOf("shop", "orders"), client.DecodeOptions{}); err != nil || ch.After.Status != "paid" {
		t.Fatalf("Decode of shop.orders into ShopOrder: %v %+v", err, ch)
	}
	if _, err := client.Decode[Plain](changeOf("shop", "orders"), client.DecodeOptions{}); err != nil {
		t.Fatalf("Decode into a struct that names no table: %v", err)
	}
	if _, err := client.Decode[Plain](changeOf("shop", "orders"), client.DecodeOptions{Database: "shop"}); !errors.As(err, &tm) || !strings.Contains(err.Error(), "shop.plain") {
		t.Fatalf("Decode with Database into Plain (shop.plain): %v", err)
	}
	var de *envelope.DecodeError
	if err := client.Build(&before, &after, []byte(`{"v":1,"id":"x"}`)); !errors.As(err, &de) {
		t.Fatalf("Build of an incomplete envelope: %v, want a DecodeError", err)
	}
}
