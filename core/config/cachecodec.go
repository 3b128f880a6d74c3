package config

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"reflect"
	"sync"
	"time"
	"unsafe"
)

// The configuration cache stores a Config in this compact binary form. encoding/gob would lose
// what reflect.DeepEqual sees: it decodes an empty map or slice as nil and cannot carry a
// *time.Location. This encoding keeps nil apart from empty, pointers, the dynamic types of
// interface values (those YAML decoding produces), and writes each distinct string once (a
// configuration repeats its file names in every Position) and each map held in several places
// once (which decodes into one map again).

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
	buf []byte
	// strings are where each string written so far was written (the offset of its length).
	strings map[string]uint64
	// maps are where each map written so far was written: a map that several values hold (the
	// issuer_options of defaults, which every certificate without its own holds) is written once
	// and decoded into one map again. A map is known by its type as well: one held as a
	// map[string]any and as an sdk.Options is written once as each.
	maps map[writtenMap]uint64
}

type writtenMap struct {
	t reflect.Type
	m unsafe.Pointer
}

func newCacheEncoder() *cacheEncoder {
	return &cacheEncoder{strings: map[string]uint64{}, maps: map[writtenMap]uint64{}}
}

// A map is written as mapNil; or mapWritten and the offset where it was written before; or
// mapEntries + its length, then its keys and values.
const (
	mapNil = iota
	mapWritten
	mapEntries
)

// encode appends v (a pointer's target is written, not the pointer).
func (e *cacheEncoder) encode(v any) error {
	return e.value(reflect.ValueOf(v).Elem())
}

func (e *cacheEncoder) uvarint(v uint64) { e.buf = binary.AppendUvarint(e.buf, v) }

// str writes a string the first time as 0, length, bytes; later as the offset of that length + 1,
// which the decoder reads the string at again: it keeps no table of the strings it has read.
func (e *cacheEncoder) str(s string) {
	if off, ok := e.strings[s]; ok {
		e.uvarint(off + 1)
		return
	}
	e.uvarint(0)
	e.strings[s] = uint64(len(e.buf))
	e.uvarint(uint64(len(s)))
	e.buf = append(e.buf, s...)
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
		if v.IsNil() {
			e.uvarint(mapNil)
			return nil
		}
		if off, ok := e.maps[writtenMap{t, v.UnsafePointer()}]; ok {
			e.uvarint(mapWritten)
			e.uvarint(off)
			return nil
		}
		e.maps[writtenMap{t, v.UnsafePointer()}] = uint64(len(e.buf))
		e.uvarint(mapEntries + uint64(v.Len()))
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

// The decoder is on every command's way (a cache hit), the encoder only after a miss: the encoder
// walks values with reflect; the decoder runs, for each type, a function made once from the type
// (decoderOf) that writes the decoded values straight into their memory, and takes the memory of
// the values pointers and slices refer to from blocks of many values.

type cacheDecoder struct {
	buf []byte
	off int
	// text is buf as a string: every string decoded is a part of it, not an allocation of its own.
	text string
	// blocks hold, by the block number of a type (typeDecoders.blockOf), values allocated a block
	// at a time for pointers and slices to refer to: a few allocations instead of one for each
	// certificate.
	blocks []valueBlock
	// spare are map keys and values to decode into, by type, free for reuse.
	spare map[reflect.Type][]reflect.Value
	// maps are the maps decoded so far, by where they were written.
	maps map[int]writtenMap
}

type valueBlock struct {
	base      unsafe.Pointer // the first of len values of one type, size bytes each
	len, used int
	size      uintptr
}

// noValues is where an empty slice's data is: not nil, and not the end of a block (a pointer past
// an allocation's end would keep whatever follows it alive).
var noValues [0]byte

// newCacheDecoder decodes buf, which it owns from then on: its strings are buf's bytes, not copies,
// so nothing may change them (an entry is read into memory of its own for this).
func newCacheDecoder(buf []byte) *cacheDecoder {
	return &cacheDecoder{buf: buf, text: unsafe.String(unsafe.SliceData(buf), len(buf)), spare: map[reflect.Type][]reflect.Value{}, maps: map[int]writtenMap{}}
}

// A type's first block holds firstBlockLen values, each next one twice as many as the one before,
// up to maxBlockLen: a type of which a configuration holds one value (its SCM account) takes
// little memory, one of which it holds thousands (certificates) takes few allocations.
const (
	firstBlockLen = 8
	maxBlockLen   = 1024
)

// take returns the memory of n consecutive zero values of type t, whose block number is block.
func (d *cacheDecoder) take(block int, t reflect.Type, n int) unsafe.Pointer {
	if n == 0 {
		return unsafe.Pointer(&noValues)
	}
	if block >= len(d.blocks) {
		d.blocks = append(d.blocks, make([]valueBlock, block+1-len(d.blocks))...)
	}
	b := &d.blocks[block]
	if b.base == nil || b.used+n > b.len {
		if n > maxBlockLen/4 {
			return reflect.MakeSlice(reflect.SliceOf(t), n, n).UnsafePointer() // large: an array of its own
		}
		size := firstBlockLen
		if b.base != nil {
			size = min(2*b.len, maxBlockLen)
		}
		size = max(size, n)
		*b = valueBlock{base: reflect.MakeSlice(reflect.SliceOf(t), size, size).UnsafePointer(), len: size, size: t.Size()}
	}
	p := unsafe.Add(b.base, uintptr(b.used)*b.size)
	b.used += n
	return p
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

// decode reads the next value into *v (v is a pointer).
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
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return fmt.Errorf("%w: decoding into a %T", errCodec, v)
	}
	decoderOf(rv.Type().Elem())(d, rv.UnsafePointer())
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

func (d *cacheDecoder) varint() int64 {
	v, n := binary.Varint(d.buf[d.off:])
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

func (d *cacheDecoder) float() float64 {
	return math.Float64frombits(binary.LittleEndian.Uint64(d.bytes(8)))
}

func (d *cacheDecoder) str() string {
	ref := d.uvarint()
	if ref == 0 {
		return d.strAt(d.off, &d.off)
	}
	// A string written before: its length is at ref-1, before this reference.
	if ref-1 >= uint64(d.off) {
		d.fail("string reference %d at byte %d", ref, d.off)
	}
	var end int
	return d.strAt(int(ref-1), &end)
}

// strAt reads the length at off and the string after it, and sets *end after the string.
func (d *cacheDecoder) strAt(off int, end *int) string {
	n, k := binary.Uvarint(d.buf[off:])
	if k <= 0 || n > uint64(len(d.buf)-off-k) {
		d.fail("truncated string at byte %d", off)
	}
	start := off + k
	*end = start + int(n)
	return d.text[start:*end]
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

// decodeFunc decodes a value of one type into the memory at p, which holds its zero value.
type decodeFunc func(d *cacheDecoder, p unsafe.Pointer)

// sliceHeader is the layout of a slice (unsafe.Slice cannot make one of a type known only to reflect).
type sliceHeader struct {
	data     unsafe.Pointer
	len, cap int
}

// typeDecoders holds the decodeFunc made for each type, and the block number given to each type
// pointers or slices refer to.
var typeDecoders struct {
	sync.Mutex
	funcs  map[reflect.Type]decodeFunc
	blocks map[reflect.Type]int
}

// decoderOf returns the decodeFunc of type t, made on first use.
func decoderOf(t reflect.Type) decodeFunc {
	typeDecoders.Lock()
	defer typeDecoders.Unlock()
	return decoderLocked(t)
}

func decoderLocked(t reflect.Type) decodeFunc {
	if f, ok := typeDecoders.funcs[t]; ok {
		return f
	}
	if typeDecoders.funcs == nil {
		typeDecoders.funcs, typeDecoders.blocks = map[reflect.Type]decodeFunc{}, map[reflect.Type]int{}
	}
	// A type that holds itself (an SCM's Lookup) finds this until its own is made.
	var made decodeFunc
	typeDecoders.funcs[t] = func(d *cacheDecoder, p unsafe.Pointer) { made(d, p) }
	made = makeDecoder(t)
	typeDecoders.funcs[t] = made
	return made
}

func blockOf(t reflect.Type) int {
	b, ok := typeDecoders.blocks[t]
	if !ok {
		b = len(typeDecoders.blocks)
		typeDecoders.blocks[t] = b
	}
	return b
}

func makeDecoder(t reflect.Type) decodeFunc {
	switch t {
	case timeType:
		return func(d *cacheDecoder, p unsafe.Pointer) {
			n, _ := d.length()
			if err := (*time.Time)(p).UnmarshalBinary(d.bytes(uint64(n))); err != nil {
				d.fail("%v", err)
			}
		}
	case locationType:
		return func(d *cacheDecoder, p unsafe.Pointer) {
			if d.uvarint() == 0 {
				return
			}
			loc, err := time.LoadLocation(d.str())
			if err != nil {
				d.fail("%v", err)
			}
			*(**time.Location)(p) = loc
		}
	}
	switch t.Kind() {
	case reflect.Bool:
		return func(d *cacheDecoder, p unsafe.Pointer) { *(*bool)(p) = d.bytes(1)[0] == 1 }
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		switch t.Size() {
		case 8:
			return func(d *cacheDecoder, p unsafe.Pointer) { *(*int64)(p) = d.varint() }
		case 4:
			return func(d *cacheDecoder, p unsafe.Pointer) { *(*int32)(p) = int32(d.varint()) }
		case 2:
			return func(d *cacheDecoder, p unsafe.Pointer) { *(*int16)(p) = int16(d.varint()) }
		default:
			return func(d *cacheDecoder, p unsafe.Pointer) { *(*int8)(p) = int8(d.varint()) }
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		switch t.Size() {
		case 8:
			return func(d *cacheDecoder, p unsafe.Pointer) { *(*uint64)(p) = d.uvarint() }
		case 4:
			return func(d *cacheDecoder, p unsafe.Pointer) { *(*uint32)(p) = uint32(d.uvarint()) }
		case 2:
			return func(d *cacheDecoder, p unsafe.Pointer) { *(*uint16)(p) = uint16(d.uvarint()) }
		default:
			return func(d *cacheDecoder, p unsafe.Pointer) { *(*uint8)(p) = uint8(d.uvarint()) }
		}
	case reflect.Float64:
		return func(d *cacheDecoder, p unsafe.Pointer) { *(*float64)(p) = d.float() }
	case reflect.Float32:
		return func(d *cacheDecoder, p unsafe.Pointer) { *(*float32)(p) = float32(d.float()) }
	case reflect.String:
		return func(d *cacheDecoder, p unsafe.Pointer) { *(*string)(p) = d.str() }
	case reflect.Slice:
		return sliceDecoder(t)
	case reflect.Array:
		elem, size, n := decoderLocked(t.Elem()), t.Elem().Size(), t.Len()
		return func(d *cacheDecoder, p unsafe.Pointer) {
			for i := 0; i < n; i++ {
				elem(d, unsafe.Add(p, uintptr(i)*size))
			}
		}
	case reflect.Map:
		return mapDecoder(t)
	case reflect.Pointer:
		et := t.Elem()
		elem, block := decoderLocked(et), blockOf(et)
		return func(d *cacheDecoder, p unsafe.Pointer) {
			if d.uvarint() == 0 {
				return
			}
			v := d.take(block, et, 1)
			elem(d, v)
			*(*unsafe.Pointer)(p) = v
		}
	case reflect.Interface:
		return interfaceDecoder(t)
	case reflect.Struct:
		type field struct {
			offset uintptr
			decode decodeFunc
		}
		fields := make([]field, t.NumField())
		for i := range fields {
			f := t.Field(i)
			if !f.IsExported() {
				return failing("%s has the unexported field %s", t, f.Name)
			}
			fields[i] = field{f.Offset, decoderLocked(f.Type)}
		}
		return func(d *cacheDecoder, p unsafe.Pointer) {
			for _, f := range fields {
				f.decode(d, unsafe.Add(p, f.offset))
			}
		}
	}
	return failing("a %s", t)
}

// failing is the decodeFunc of a type the encoder refuses: an entry holding one is not of this build.
func failing(format string, args ...any) decodeFunc {
	return func(d *cacheDecoder, _ unsafe.Pointer) { d.fail(format, args...) }
}

func sliceDecoder(t reflect.Type) decodeFunc {
	et := t.Elem()
	if et.Kind() == reflect.Uint8 {
		return func(d *cacheDecoder, p unsafe.Pointer) {
			if n, isNil := d.length(); !isNil {
				*(*[]byte)(p) = append([]byte{}, d.bytes(uint64(n))...)
			}
		}
	}
	elem, block, size := decoderLocked(et), blockOf(et), et.Size()
	return func(d *cacheDecoder, p unsafe.Pointer) {
		n, isNil := d.length()
		if isNil {
			return
		}
		data := d.take(block, et, n) // not nil for n = 0 either: an empty slice stays one
		for i := 0; i < n; i++ {
			elem(d, unsafe.Add(data, uintptr(i)*size))
		}
		// Its capacity is its length: an append to one slice must not write over the next.
		*(*sliceHeader)(p) = sliceHeader{data, n, n}
	}
}

func mapDecoder(t reflect.Type) decodeFunc {
	kt, et := t.Key(), t.Elem()
	key, elem := decoderLocked(kt), decoderLocked(et)
	return func(d *cacheDecoder, p unsafe.Pointer) {
		at := d.off
		tag := d.uvarint()
		switch {
		case tag == mapNil:
			return
		case tag == mapWritten:
			before := d.uvarint()
			m, ok := d.maps[int(min(before, math.MaxInt32))]
			if !ok || m.t != t {
				d.fail("no %s written at byte %d", t, before)
			}
			*(*unsafe.Pointer)(p) = m.m // a map value is a pointer
			return
		case tag-mapEntries > uint64(len(d.buf)-d.off): // every entry takes a byte at least
			d.fail("a length of %d at byte %d", tag-mapEntries, at)
		}
		n := int(tag - mapEntries)
		m := reflect.MakeMapWithSize(t, n)
		d.maps[at] = writtenMap{t, m.UnsafePointer()} // as the encoder: known before its entries
		// A map in a value of this map (an `any`) takes other temporaries than these.
		k, e := d.temp(kt), d.temp(et)
		kp, ep := k.Addr().UnsafePointer(), e.Addr().UnsafePointer()
		for i := 0; i < n; i++ {
			k.SetZero()
			e.SetZero()
			key(d, kp)
			elem(d, ep)
			m.SetMapIndex(k, e)
		}
		d.release(k)
		d.release(e)
		*(*unsafe.Pointer)(p) = m.UnsafePointer()
	}
}

func interfaceDecoder(t reflect.Type) decodeFunc {
	dynamic := make([]decodeFunc, len(dynamicTypes))
	for i, dt := range dynamicTypes {
		dynamic[i] = decoderLocked(dt)
	}
	return func(d *cacheDecoder, p unsafe.Pointer) {
		i := d.uvarint()
		if i == 0 {
			return
		}
		if i > uint64(len(dynamicTypes)) {
			d.fail("dynamic type %d", i)
		}
		dt := dynamicTypes[i-1]
		if t == anyType && d.scalarInto((*any)(p), dt) {
			return
		}
		c := reflect.New(dt)
		dynamic[i-1](d, c.UnsafePointer())
		reflect.NewAt(t, p).Elem().Set(c.Elem())
	}
}

// scalarInto decodes a string, bool, int or float64 straight into *p, without the allocations
// reflect takes to put a value into an interface (false: another type).
func (d *cacheDecoder) scalarInto(p *any, t reflect.Type) bool {
	switch t.Kind() {
	case reflect.String:
		*p = d.str()
	case reflect.Bool:
		*p = d.bytes(1)[0] == 1
	case reflect.Int:
		*p = int(d.varint())
	case reflect.Float64:
		*p = d.float()
	default:
		return false
	}
	return true
}
