package xms

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// The API types its fields loosely: ids are numbers in the list and strings in requests, privateKey
// is the string "true"/"false", validDays a string (reference §0, "Loose typing", confirmed by the
// WEB-10.3, PDF-10.4 and PDF-2021 samples). Int and Bool accept either form.

// Int is a number sent as a JSON number or a string.
type Int int64

// UnmarshalJSON accepts 42, "42" and null.
func (n *Int) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if bytes.Equal(b, []byte("null")) {
		return nil
	}
	s := string(b)
	if len(b) > 0 && b[0] == '"' {
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		s = strings.TrimSpace(s)
		if s == "" {
			return nil
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return fmt.Errorf("not a whole number: %q", s)
	}
	*n = Int(v)
	return nil
}

// Bool is a boolean sent as JSON true/false or the strings "true"/"false".
type Bool bool

// UnmarshalJSON accepts true, "true", false, "false" and null.
func (v *Bool) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if bytes.Equal(b, []byte("null")) {
		return nil
	}
	s := string(b)
	if len(b) > 0 && b[0] == '"' {
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
	}
	parsed, err := strconv.ParseBool(strings.TrimSpace(s))
	if err != nil {
		return fmt.Errorf("not a boolean: %q", s)
	}
	*v = Bool(parsed)
	return nil
}
