package client

import (
	"reflect"

	"github.com/dbsync/dbsync/pkg/client/internal/decode"
)

// The decoder's public names; the decoder itself is in internal/decode.
type (
	// DecodeOptions control how row values become Go values: the location
	// of DATETIME values (Location, default UTC), whether a column without
	// a field is an error (Strict), and the database a struct without a
	// TableName() method belongs to (Database, for Decode).
	DecodeOptions = decode.Options
	// Decoder is the decoding plan of one struct type: which column goes
	// to which field and how its JSON value is converted. It is immutable
	// once built and safe for concurrent use; build it once per type.
	Decoder = decode.Decoder
	// FieldError reports a column value that does not fit its struct
	// field, naming the table, column and field, e.g.
	// `table shop.orders column "qty" -> field Order.Qty (int8): value 300 overflows int8`.
	// With DecodeOptions.Strict, a column no field maps to is a FieldError
	// with an empty Field.
	FieldError = decode.FieldError
)

// NewDecoder builds the decoding plan for struct type t (a struct type, not a
// pointer to one). Every exported field maps to one column: a `db:"name"` tag
// first (`db:"-"` skips the field), else gorm's `gorm:"column:name"`
// (`gorm:"-"`, `gorm:"-:all"` and `gorm:"->:false"` skip), else a
// `json:"name"` tag (`json:"-"` skips; options after the comma are ignored),
// else SnakeCase of the field name. Anonymous struct fields (and pointers to
// structs), and fields tagged `gorm:"embedded"` (with an optional
// `embeddedPrefix:`), are flattened like gorm does, unless they are a value
// type of their own (time.Time, sql.Null*, a sql.Scanner or
// encoding.TextUnmarshaler) or an anonymous one carries a tag naming a column.
// Column names match case-insensitively. A field shadows a deeper embedded
// field of the same column, as in Go; two fields at the same depth claiming one
// column make NewDecoder fail naming both. Fields of types that cannot hold any
// row value (chan, func, complex, ...) are accepted and fail at Decode time
// when their column appears.
func NewDecoder(t reflect.Type, opts DecodeOptions) (*Decoder, error) { return decode.New(t, opts) }

// TableName returns the table a struct type maps to: the result of its
// TableName() string method when it has one (gorm's convention; a value or a
// pointer receiver both count, the method is called on a zero value), else
// SnakeCase of the type's name ("HoleComment" -> "hole_comment"). Unlike gorm
// it never pluralizes. A pointer type is looked through to its element; a nil
// type or an unnamed type without the method yields "".
func TableName(t reflect.Type) string { return decode.TableName(t) }

// SnakeCase converts a Go identifier to snake_case exactly the way gorm's
// default NamingStrategy names columns: "ID" -> "id", "HoleId" -> "hole_id",
// "CreatedAt" -> "created_at", "ImageURL" -> "image_url", "UserIDs" ->
// "user_ids". It never fails; "" stays "".
func SnakeCase(s string) string { return decode.SnakeCase(s) }
