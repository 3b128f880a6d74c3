package sdk

import (
	"crypto/x509"
	"fmt"
	"time"
)

// Target is the device a call acts on, with credentials already resolved by the core.
type Target struct {
	// Name of the device in the core's configuration; for logs and object names only.
	Name string
	// Address of the management API, in the form the plugin documents.
	Address     string
	TLS         TLSConfig
	Credentials Credentials
	// Vendor options from the device's configuration.
	Options Options
}

// TLSConfig for the management connection. The zero value verifies against the system roots.
type TLSConfig struct {
	InsecureSkipVerify bool
	// CABundlePEM replaces the system roots when set.
	CABundlePEM string
	ServerName  string
}

// Credentials for the device. Their String method never shows a secret.
type Credentials struct {
	Username string
	Password string
	APIKey   string
	Token    string
}

// String describes which credentials are present without revealing any.
func (c Credentials) String() string {
	return fmt.Sprintf("{username:%q password:%s api_key:%s token:%s}", c.Username,
		redacted(c.Password), redacted(c.APIKey), redacted(c.Token))
}

// GoString keeps %#v from printing secrets too.
func (c Credentials) GoString() string { return c.String() }

func redacted(s string) string {
	if s == "" {
		return "unset"
	}
	return "set"
}

// KeyType is a public key algorithm.
type KeyType int

const (
	KeyTypeUnspecified KeyType = iota
	KeyTypeRSA
	KeyTypeECDSA
)

func (k KeyType) String() string {
	switch k {
	case KeyTypeRSA:
		return "rsa"
	case KeyTypeECDSA:
		return "ecdsa"
	default:
		return "unspecified"
	}
}

// KeySpec is an algorithm and a size: RSA modulus bits or ECDSA curve bits (256, 384, 521).
type KeySpec struct {
	Type KeyType
	Bits int
}

func (k KeySpec) String() string { return fmt.Sprintf("%s-%d", k.Type, k.Bits) }

// Valid reports whether the spec is one the contract allows.
func (k KeySpec) Valid() bool {
	switch k.Type {
	case KeyTypeRSA:
		return k.Bits == 2048 || k.Bits == 3072 || k.Bits == 4096
	case KeyTypeECDSA:
		return k.Bits == 256 || k.Bits == 384 || k.Bits == 521
	}
	return false
}

// Subject is the distinguished name requested for a certificate.
type Subject struct {
	CommonName         string
	Organization       string
	OrganizationalUnit string
	Locality           string
	State              string
	Country            string
	Email              string
}

// SANs are the subject alternative names of a certificate.
type SANs struct {
	DNSNames       []string
	IPAddresses    []string
	EmailAddresses []string
}

// Binding is one place on the device that serves a certificate.
type Binding struct {
	// Kind is one of the plugin's declared binding kinds.
	Kind string
	// Name of the device object (vserver, profile, ...).
	Name    string
	SNI     bool
	Options Options
}

func (b Binding) String() string {
	if b.SNI {
		return b.Kind + "/" + b.Name + " (sni)"
	}
	return b.Kind + "/" + b.Name
}

// OptionSpec documents one vendor option.
type OptionSpec struct {
	Name        string
	Description string
	// Type is "string", "bool", "number" or "list".
	Type string
}

// Capabilities say what a plugin can do.
type Capabilities struct {
	KeySpecs         []KeySpec
	BindingKinds     []string
	NeedsCommit      bool
	SupportsRollback bool
	SupportsCleanup  bool
	TargetOptions    []OptionSpec
	BindingOptions   []OptionSpec
}

// SupportsKey reports whether spec is among the declared key specs.
func (c Capabilities) SupportsKey(spec KeySpec) bool {
	for _, k := range c.KeySpecs {
		if k == spec {
			return true
		}
	}
	return false
}

// SupportsBinding reports whether kind is among the declared binding kinds.
func (c Capabilities) SupportsBinding(kind string) bool {
	for _, k := range c.BindingKinds {
		if k == kind {
			return true
		}
	}
	return false
}

// Info describes a plugin.
type Info struct {
	Name                 string
	Version              string
	Vendor               string
	Description          string
	ContractMinorVersion int
	Capabilities         Capabilities
}

// TargetInfo is what CheckTarget learns about a device.
type TargetInfo struct {
	Hostname        string
	Model           string
	SoftwareVersion string
	SerialNumber    string
	// HARole is "standalone", "active", "standby", or the vendor's word.
	HARole  string
	Details map[string]string
}

// DeviceCertificate is one certificate object on a device.
type DeviceCertificate struct {
	CertRef           string
	KeyRef            string
	Serial            string
	Subject           string
	Issuer            string
	SANs              SANs
	NotBefore         time.Time
	NotAfter          time.Time
	KeySpec           KeySpec
	SHA256Fingerprint string
	Bindings          []Binding
	IsCA              bool
	CertPEM           string
}

// CSRRequest asks for a new key pair and a CSR.
type CSRRequest struct {
	// NameHint is a stable name for the certificate; the plugin builds the object names from it.
	NameHint string
	KeySpec  KeySpec
	Subject  Subject
	SANs     SANs
	// AttemptID identifies this key request; the core sends the same one again when the answer
	// of an earlier call was lost. When set, name the objects made for the key
	// AttemptName(NameHint, sep, AttemptID, limit) (or with AttemptTag), and first remove what an
	// earlier call of the same attempt left (or reuse its key), so that one attempt never leaves
	// more than one key on the device. Empty (an older core): new names on every call.
	AttemptID string
}

// CSR is a certificate signing request made on the device.
type CSR struct {
	PEM string
	// KeyRef is an opaque reference to the key on the device.
	KeyRef string
}

// ImportRequest installs a signed certificate against a key made by GenerateCSR.
type ImportRequest struct {
	KeyRef   string
	CertPEM  string
	ChainPEM []string
	NameHint string
}

// ImportResult names what ImportCert created.
type ImportResult struct {
	CertRef   string
	ChainRefs []string
}

// BindRequest points bindings at an imported certificate.
type BindRequest struct {
	CertRef  string
	KeyRef   string
	Bindings []Binding
}

// BindResult tells how to undo a Bind.
type BindResult struct {
	RollbackToken    []byte
	PreviousCertRefs []string
}

// CommitRequest makes staged changes live.
type CommitRequest struct {
	Description string
}

// CommitResult reports a commit.
type CommitResult struct {
	Changed bool
	JobID   string
	Message string
}

// ObjectRef names a certificate and/or key object on the device.
type ObjectRef struct {
	CertRef string
	KeyRef  string
}

// CleanupResult reports on one object Cleanup was asked to remove.
type CleanupResult struct {
	Object  ObjectRef
	Removed bool
	Reason  string
}

// KeySpecOf returns the key spec of a certificate's public key.
func KeySpecOf(cert *x509.Certificate) KeySpec {
	return keySpecOfPublicKey(cert.PublicKey)
}
