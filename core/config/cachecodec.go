package config

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"reflect"
	"time"
)

// The configuration cache stores a Config in this compact binary form. encoding/gob would lose
// what reflect.DeepEqual sees: it decodes an empty map or slice as nil and cannot carry a
// *time.Location. This encoding keeps nil apart from empty, pointers, the dynamic types of
// interface values (those YAML decoding produces), and writes each distinct string once (a
// configuration repeats its file names in every Position).

// errCodec marks a value the cache cannot hold, or an entry that does not decode.
var errCodec = errors.New("configuration cache codec")

var (
	timeType     = reflect.TypeOf(time.Time{})
	locationType = reflect.TypeOf((*time.Location)(nil))
	anyType      = reflect.TypeOf((*any)(nil)).Elem()
	// dynamicTypes are the types an `any` of a configuration may hold (YAML decoding into an
	// interface); a position in this list identifies the type in an entry.
	dynamicTypes = []reflect.Type{
		reflect.TypeOf(""), reflect.TypeOf(false), reflect.TypeOf(0), reflect.TypeOf(int64(0)),
		reflect.TypeOf(uint64(0)), reflect.TypeOf(float64(0)), reflect.TypeOf([]any(nil)),
		reflect.TypeOf(map[string]any(nil)), reflect.TypeOf(map[any]any(nil)), timeType, reflect.TypeOf([]byte(nil)),
	}
	dynamicIndex = func() map[reflect.Type]uint64 {
		m := map[reflect.Type]uint64{}
		for i, t := range dynamicTypes {
			m[t] = uint64(i)
		}
		return m
	}()
)

type cacheEncoder struct {
	buf     []byte
	strings map[string]uint64
}

func newCacheEncoder() *cacheEncoder {
	return &cacheEncoder{strings: map[string]uint64{}}
}

// encode appends v (a pointer's target is written, not the pointer).
func (e *cacheEncoder) encode(v any) error {
	return e.value(reflect.ValueOf(v).Elem())
}

func (e *cacheEncoder) uvarint(v uint64) { e.buf = binary.AppendUvarint(e.buf, v) }

// str writes a string the first time as 0, length, bytes; later as its index + 1.
func (e *cacheEncoder) str(s string) {
	if i, ok := e.strings[s]; ok {
		e.uvarint(i + 1)
		return
	}
	e.uvarint(0)
	e.uvarint(uint64(len(s)))
	e.buf = append(e.buf, s...)
	e.strings[s] = uint64(len(e.strings))
}

// length writes 0 for nil, else the length + 1.
func (e *cacheEncoder) length(nilValue bool, n int) {
	if nilValue {
		e.uvarint(0)
		return
	}
	e.uvarint(uint64(n) + 1)
}

func (e *cacheEncoder) value(v reflect.Value) error {
	t := v.Type()
	switch t {
	case timeType:
		b, err := v.Interface().(time.Time).MarshalBinary()
		if err != nil {
			return fmt.Errorf("%w: %v", errCodec, err)
		}
		e.length(false, len(b))
		e.buf = append(e.buf, b...)
		return nil
	case locationType:
		if v.IsNil() {
			e.uvarint(0)
			return nil
		}
		e.uvarint(1)
		// time.LoadLocation gives back Local and UTC for these names, and reads any other zone
		// as the configuration's time_zone did.
		e.str(v.Interface().(*time.Location).String())
		return nil
	}
	switch t.Kind() {
	case reflect.Bool:
		b := byte(0)
		if v.Bool() {
			b = 1
		}
		e.buf = append(e.buf, b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		e.buf = binary.AppendVarint(e.buf, v.Int())
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		e.uvarint(v.Uint())
	case reflect.Float32, reflect.Float64:
		e.buf = binary.LittleEndian.AppendUint64(e.buf, math.Float64bits(v.Float()))
	case reflect.String:
		e.str(v.String())
	case reflect.Slice:
		e.length(v.IsNil(), v.Len())
		if t.Elem().Kind() == reflect.Uint8 {
			e.buf = append(e.buf, v.Bytes()...)
			return nil
		}
		for i := 0; i < v.Len(); i++ {
			if err := e.value(v.Index(i)); err != nil {
				return err
			}
		}
	case reflect.Array:
		for i := 0; i < v.Len(); i++ {
			if err := e.value(v.Index(i)); err != nil {
				return err
			}
		}
	case reflect.Map:
		e.length(v.IsNil(), v.Len())
		for it := v.MapRange(); it.Next(); {
			if err := e.value(it.Key()); err != nil {
				return err
			}
			if err := e.value(it.Value()); err != nil {
				return err
			}
		}
	case reflect.Pointer:
		if v.IsNil() {
			e.uvarint(0)
			return nil
		}
		e.uvarint(1)
		return e.value(v.Elem())
	case reflect.Interface:
		if v.IsNil() {
			e.uvarint(0)
			return nil
		}
		c := v.Elem()
		i, ok := dynamicIndex[c.Type()]
		if !ok {
			return fmt.Errorf("%w: a value of type %s", errCodec, c.Type())
		}
		e.uvarint(i + 1)
		return e.value(c)
	case reflect.Struct:
		for i := 0; i < t.NumField(); i++ {
			if !t.Field(i).IsExported() {
				return fmt.Errorf("%w: %s has the unexported field %s", errCodec, t, t.Field(i).Name)
			}
			if err := e.value(v.Field(i)); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("%w: a %s", errCodec, t)
	}
	return nil
}

type cacheDecoder struct {
	buf []byte
	off int
	// text is buf as a string: every string decoded is a part of it, not an allocation of its own.
	text    string
	strings []string
	// blocks hold, by type, values allocated a block at a time for pointers to point to: a few
	// allocations instead of one for each certificate.
	blocks map[reflect.Type]*valueBlock
	// spare are map keys and values to decode into, by type, free for reuse.
	spare map[reflect.Type][]reflect.Value
}

type valueBlock struct {
	values reflect.Value // a slice
	used   int
}

func newCacheDecoder(buf []byte) *cacheDecoder {
	return &cacheDecoder{buf: buf, text: string(buf), blocks: map[reflect.Type]*valueBlock{}, spare: map[reflect.Type][]reflect.Value{}}
}

// cacheBlockLen is how many values of a type a block holds.
const cacheBlockLen = 256

// newValue returns a settable zero value of type t whose address a pointer may keep.
func (d *cacheDecoder) newValue(t reflect.Type) reflect.Value {
	b := d.blocks[t]
	if b == nil || b.used == b.values.Len() {
		b = &valueBlock{values: reflect.MakeSlice(reflect.SliceOf(t), cacheBlockLen, cacheBlockLen)}
		d.blocks[t] = b
	}
	b.used++
	return b.values.Index(b.used - 1)
}

// temp returns a settable zero value of type t, until release.
func (d *cacheDecoder) temp(t reflect.Type) reflect.Value {
	if free := d.spare[t]; len(free) > 0 {
		v := free[len(free)-1]
		d.spare[t] = free[:len(free)-1]
		v.SetZero()
		return v
	}
	return reflect.New(t).Elem()
}

func (d *cacheDecoder) release(v reflect.Value) {
	d.spare[v.Type()] = append(d.spare[v.Type()], v)
}

// codecFailure carries a decoding error up through the recursion (recovered in decode).
type codecFailure struct{ err error }

// decode reads the next value into *v.
func (d *cacheDecoder) decode(v any) (err error) {
	defer func() {
		if r := recover(); r != nil {
			f, ok := r.(codecFailure)
			if !ok {
				panic(r)
			}
			err = f.err
		}
	}()
	d.value(reflect.ValueOf(v).Elem())
	return nil
}

func (d *cacheDecoder) fail(format string, args ...any) {
	panic(codecFailure{fmt.Errorf("%w: "+format, append([]any{errCodec}, args...)...)})
}

func (d *cacheDecoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.buf[d.off:])
	if n <= 0 {
		d.fail("truncated at byte %d", d.off)
	}
	d.off += n
	return v
}

func (d *cacheDecoder) bytes(n uint64) []byte {
	if n > uint64(len(d.buf)-d.off) {
		d.fail("truncated at byte %d", d.off)
	}
	b := d.buf[d.off : d.off+int(n)]
	d.off += int(n)
	return b
}

func (d *cacheDecoder) str() string {
	i := d.uvarint()
	if i > 0 {
		if i > uint64(len(d.strings)) {
			d.fail("string %d of %d", i, len(d.strings))
		}
		return d.strings[i-1]
	}
	n := d.uvarint()
	start := d.off
	d.bytes(n)
	s := d.text[start:d.off]
	d.strings = append(d.strings, s)
	return s
}

// length reads what length wrote: nil, or a count no larger than the bytes left (every element
// takes at least one).
func (d *cacheDecoder) length() (n int, isNil bool) {
	v := d.uvarint()
	if v == 0 {
		return 0, true
	}
	if v-1 > uint64(len(d.buf)-d.off) {
		d.fail("a length of %d at byte %d", v-1, d.off)
	}
	return int(v - 1), false
}

func (d *cacheDecoder) value(v reflect.Value) {
	t := v.Type()
	switch t {
	case timeType:
		n, _ := d.length()
		var tm time.Time
		if err := tm.UnmarshalBinary(d.bytes(uint64(n))); err != nil {
			d.fail("%v", err)
		}
		v.Set(reflect.ValueOf(tm))
		return
	case locationType:
		if d.uvarint() == 0 {
			return
		}
		loc, err := time.LoadLocation(d.str())
		if err != nil {
			d.fail("%v", err)
		}
		v.Set(reflect.ValueOf(loc))
		return
	}
	switch t.Kind() {
	case reflect.Bool:
		v.SetBool(d.bytes(1)[0] == 1)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		x, n := binary.Varint(d.buf[d.off:])
		if n <= 0 {
			d.fail("truncated at byte %d", d.off)
		}
		d.off += n
		v.SetInt(x)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		v.SetUint(d.uvarint())
	case reflect.Float32, reflect.Float64:
		v.SetFloat(math.Float64frombits(binary.LittleEndian.Uint64(d.bytes(8))))
	case reflect.String:
		v.SetString(d.str())
	case reflect.Slice:
		n, isNil := d.length()
		if isNil {
			return
		}
		if t.Elem().Kind() == reflect.Uint8 {
			v.SetBytes(append([]byte{}, d.bytes(uint64(n))...))
			return
		}
		if n == 0 {
			v.Set(reflect.MakeSlice(t, 0, 0))
			return
		}
		// Grown in place: the slice's header is v's own, only its array is allocated.
		v.Grow(n)
		v.SetLen(n)
		for i := 0; i < n; i++ {
			d.value(v.Index(i))
		}
	case reflect.Array:
		for i := 0; i < v.Len(); i++ {
			d.value(v.Index(i))
		}
	case reflect.Map:
		n, isNil := d.length()
		if isNil {
			return
		}
		m := reflect.MakeMapWithSize(t, n)
		// A map in a value of this map (an `any`) takes other temporaries than these.
		key, elem := d.temp(t.Key()), d.temp(t.Elem())
		for i := 0; i < n; i++ {
			key.SetZero()
			elem.SetZero()
			d.value(key)
			d.value(elem)
			m.SetMapIndex(key, elem)
		}
		d.release(key)
		d.release(elem)
		v.Set(m)
	case reflect.Pointer:
		if d.uvarint() == 0 {
			return
		}
		p := d.newValue(t.Elem())
		d.value(p)
		v.Set(p.Addr())
	case reflect.Interface:
		i := d.uvarint()
		if i == 0 {
			return
		}
		if i > uint64(len(dynamicTypes)) {
			d.fail("dynamic type %d", i)
		}
		if t == anyType && v.CanAddr() && d.scalarInto(v.Addr().Interface().(*any), dynamicTypes[i-1]) {
			return
		}
		c := reflect.New(dynamicTypes[i-1]).Elem()
		d.value(c)
		v.Set(c)
	case reflect.Struct:
		for i := 0; i < t.NumField(); i++ {
			d.value(v.Field(i))
		}
	default:
		d.fail("a %s", t)
	}
}

// scalarInto decodes a string, bool, int or float64 straight into *p, without the two
// allocations reflect takes to put a value into an interface (false: another type).
func (d *cacheDecoder) scalarInto(p *any, t reflect.Type) bool {
	switch t.Kind() {
	case reflect.String:
		*p = d.str()
	case reflect.Bool:
		*p = d.bytes(1)[0] == 1
	case reflect.Int:
		x, n := binary.Varint(d.buf[d.off:])
		if n <= 0 {
			d.fail("truncated at byte %d", d.off)
		}
		d.off += n
		*p = int(x)
	case reflect.Float64:
		*p = math.Float64frombits(binary.LittleEndian.Uint64(d.bytes(8)))
	default:
		return false
	}
	return true
}
