package sdk

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"reflect"
	"testing"
	"time"

	devicev1 "github.com/certfleet/certfleet/proto/certfleet/device/v1"
	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"
)

// inventoryPlugin lists one certificate, bound at "www", described by describeFn, and records
// whether the caller asked for fingerprints only.
type inventoryPlugin struct {
	Plugin
	cert       *x509.Certificate
	onlyAsked  chan bool
	describeFn func(ctx context.Context, cert *x509.Certificate) DeviceCertificate
}

func (p *inventoryPlugin) Inventory(ctx context.Context, _ Target) ([]DeviceCertificate, error) {
	p.onlyAsked <- FingerprintsOnly(ctx)
	dc := p.describeFn(ctx, p.cert)
	dc.CertRef = "www"
	dc.Bindings = []Binding{{Kind: "live-link", Name: "www"}}
	return []DeviceCertificate{dc}, nil
}

func selfSigned(t *testing.T) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(42), Subject: pkix.Name{CommonName: "www.example.test"},
		DNSNames: []string{"www.example.test"}, NotBefore: time.Unix(1_700_000_000, 0), NotAfter: time.Unix(1_800_000_000, 0)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// overTheWire serves impl over an in-memory gRPC connection and returns the host's side of it.
func overTheWire(t *testing.T, impl Plugin) Plugin {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer()
	devicev1.RegisterDeviceServiceServer(srv, &grpcServer{impl: impl, log: hclog.NewNullLogger()})
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient("passthrough:///bufnet", grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return &grpcClient{client: devicev1.NewDeviceServiceClient(conn)}
}

func TestInventoryFingerprintsOnlyCrossesTheWire(t *testing.T) {
	cert := selfSigned(t)
	whole := Describe(cert)
	whole.CertRef, whole.Bindings = "www", []Binding{{Kind: "live-link", Name: "www"}}
	// As the wire carries it (empty lists and nil ones are alike there).
	whole = deviceCertFromProto(deviceCertToProto(whole))
	for _, tc := range []struct {
		name     string
		describe func(context.Context, *x509.Certificate) DeviceCertificate
	}{
		// as a plugin that predates the request does
		{"plugin ignores the request", func(_ context.Context, c *x509.Certificate) DeviceCertificate { return Describe(c) }},
		{"plugin honours the request", DescribeFor},
	} {
		t.Run(tc.name, func(t *testing.T) {
			impl := &inventoryPlugin{cert: cert, onlyAsked: make(chan bool, 1), describeFn: tc.describe}
			host := overTheWire(t, impl)
			ctx := context.Background()

			got, err := host.Inventory(ctx, Target{Name: "d"})
			if err != nil {
				t.Fatal(err)
			}
			if <-impl.onlyAsked {
				t.Error("a plain Inventory reached the plugin as one of fingerprints only")
			}
			if len(got) != 1 || !reflect.DeepEqual(got[0], whole) {
				t.Fatalf("whole inventory %+v, want %+v", got, whole)
			}

			got, err = host.Inventory(WithFingerprintsOnly(ctx), Target{Name: "d"})
			if err != nil {
				t.Fatal(err)
			}
			if !<-impl.onlyAsked {
				t.Error("the plugin was not told that the caller reads fingerprints only")
			}
			want := DeviceCertificate{CertRef: "www", SHA256Fingerprint: Fingerprint(cert), Bindings: whole.Bindings}
			if len(got) != 1 || !reflect.DeepEqual(got[0], want) {
				t.Fatalf("inventory of fingerprints only %+v, want %+v", got, want)
			}
		})
	}
}

func TestDescribeForFillsOnlyTheFingerprintWhenAsked(t *testing.T) {
	cert := selfSigned(t)
	if got := DescribeFor(context.Background(), cert); !reflect.DeepEqual(got, Describe(cert)) {
		t.Errorf("DescribeFor of a whole inventory %+v, want Describe's %+v", got, Describe(cert))
	}
	got := DescribeFor(WithFingerprintsOnly(context.Background()), cert)
	if want := (DeviceCertificate{SHA256Fingerprint: Fingerprint(cert)}); !reflect.DeepEqual(got, want) {
		t.Errorf("DescribeFor of fingerprints only %+v, want %+v", got, want)
	}
}
