package config

import (
	"reflect"
	"strconv"
	"testing"
	"time"
)

// filler sets every field of a value to something other than its zero value, so that a codec
// that skips or misplaces a field (one added to Certificate later, say) does not round-trip it.
type filler struct{ n int }

func (f *filler) next() int { f.n++; return f.n }

// anyValue is one of the values YAML decoding puts into an `any`, by turns.
func (f *filler) anyValue(depth int) any {
	n := f.next()
	switch n % 12 {
	case 0:
		return "s" + strconv.Itoa(n)
	case 1:
		return n%2 == 0
	case 2:
		return n
	case 3:
		return int64(-n)
	case 4:
		return uint64(n) << 40
	case 5:
		return float64(n) + 0.5
	case 6:
		return time.Date(2026, 1, n%28+1, 1, 2, 3, 4, time.UTC)
	case 7:
		return []byte("b" + strconv.Itoa(n))
	case 8:
		if depth > 0 {
			return []any{f.anyValue(depth - 1), f.anyValue(depth - 1), "shared"}
		}
	case 9:
		if depth > 0 {
			return map[string]any{"k" + strconv.Itoa(n): f.anyValue(depth - 1), "shared": "shared"}
		}
	case 10:
		if depth > 0 {
			return map[any]any{"k" + strconv.Itoa(n): f.anyValue(depth - 1)}
		}
	case 11:
		return nil
	}
	return "shared" // a string written before: a reference
}

func (f *filler) fill(v reflect.Value, depth int) {
	t := v.Type()
	switch t {
	case timeType:
		v.Set(reflect.ValueOf(time.Date(2026, 2, f.next()%28+1, 4, 5, 6, 7, time.UTC)))
		return
	case locationType:
		v.Set(reflect.ValueOf(time.UTC))
		return
	}
	switch t.Kind() {
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(-int64(f.next()))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		v.SetUint(uint64(f.next()))
	case reflect.Float32, reflect.Float64:
		v.SetFloat(float64(f.next()) / 4)
	case reflect.String:
		v.SetString(t.Name() + strconv.Itoa(f.next()%5)) // repeats, as file names do
	case reflect.Slice:
		n := 3
		if depth <= 0 {
			n = 0 // empty, not nil
		}
		s := reflect.MakeSlice(t, n, n)
		for i := 0; i < n; i++ {
			f.fill(s.Index(i), depth-1)
		}
		v.Set(s)
	case reflect.Array:
		for i := 0; i < v.Len(); i++ {
			f.fill(v.Index(i), depth)
		}
	case reflect.Map:
		m := reflect.MakeMap(t)
		for i := 0; depth > 0 && i < 3; i++ {
			k, e := reflect.New(t.Key()).Elem(), reflect.New(t.Elem()).Elem()
			f.fill(k, depth-1)
			f.fill(e, depth-1)
			m.SetMapIndex(k, e)
		}
		v.Set(m)
	case reflect.Pointer:
		if depth > 0 {
			p := reflect.New(t.Elem())
			f.fill(p.Elem(), depth-1)
			v.Set(p)
		}
	case reflect.Interface:
		if a := f.anyValue(2); a != nil {
			v.Set(reflect.ValueOf(a))
		}
	case reflect.Struct:
		for i := 0; i < t.NumField(); i++ {
			f.fill(v.Field(i), depth)
		}
	}
}

// TestCacheCodecRoundTripsEveryField: a Config with every field set (maps, pointers, every kind
// of `any`) decodes to what was encoded, and so do the entry's other parts.
func TestCacheCodecRoundTripsEveryField(t *testing.T) {
	f := &filler{}
	var in cacheEntry
	in.cfg = &Config{}
	values := []any{&in.deps, &in.state, &in.resolvable, &in.refs, &in.warnings, &in.plainHTTP, in.cfg}
	for _, v := range values {
		f.fill(reflect.ValueOf(v).Elem(), 4)
	}
	if len(in.cfg.Certificates) == 0 || in.cfg.Daemon == nil || in.cfg.Issuers == nil || len(in.cfg.Devices) == 0 {
		t.Fatalf("the filler left parts empty: %+v", in.cfg)
	}
	// One map held by every certificate (as defaults' issuer_options are) and, as another type,
	// by a device.
	shared := map[string]any{"cert_type": "OV SSL", "nested": map[string]any{"k": "v"}}
	for _, c := range in.cfg.Certificates {
		c.IssuerOptions = shared
	}
	for _, dev := range in.cfg.Devices {
		dev.Options = shared
	}
	enc := newCacheEncoder()
	for _, v := range values {
		if err := enc.encode(v); err != nil {
			t.Fatal(err)
		}
	}
	var out cacheEntry
	out.cfg = &Config{}
	d := newCacheDecoder(enc.buf)
	for _, v := range []any{&out.deps, &out.state, &out.resolvable, &out.refs, &out.warnings, &out.plainHTTP, out.cfg} {
		if err := d.decode(v); err != nil {
			t.Fatal(err)
		}
	}
	if d.off != len(enc.buf) {
		t.Errorf("%d of %d bytes decoded", d.off, len(enc.buf))
	}
	if !reflect.DeepEqual(in, out) {
		t.Errorf("decoded entry differs:\n in: %+v\nout: %+v", in.cfg, out.cfg)
	}
	var decodedShared map[string]any
	for name, c := range in.cfg.Certificates {
		got := out.cfg.Certificates[name]
		if !reflect.DeepEqual(c, got) {
			t.Errorf("certificate %s:\n in: %+v\nout: %+v", name, c, got)
		}
		if decodedShared == nil {
			decodedShared = got.IssuerOptions
		}
		if reflect.ValueOf(got.IssuerOptions).UnsafePointer() != reflect.ValueOf(decodedShared).UnsafePointer() {
			t.Errorf("certificate %s: the shared issuer options decode to a map of its own", name)
		}
	}
	for name, dev := range out.cfg.Devices {
		if reflect.ValueOf(dev.Options).UnsafePointer() == reflect.ValueOf(decodedShared).UnsafePointer() {
			t.Errorf("device %s: options of another type decode to the certificates' map", name)
		}
	}
}

// TestCacheDecoderSurvivesDamage: a payload with any byte changed decodes or fails with an error;
// it never panics, whatever it says (a damaged entry that passes the CRC is not trusted either).
func TestCacheDecoderSurvivesDamage(t *testing.T) {
	enc := encodedGoodConfig(t)
	damaged := make([]byte, len(enc.buf))
	for i := range enc.buf {
		for _, b := range []byte{0x00, 0x01, 0x02, 0x7f, 0x80, 0xff, enc.buf[i] ^ 0x10} {
			copy(damaged, enc.buf)
			damaged[i] = b
			_ = newCacheDecoder(damaged).decode(&Config{}) // the test fails if this panics
		}
	}
}
