package sdk

import (
	"context"

	devicev1 "github.com/certfleet/certfleet/proto/certfleet/device/v1"
	"github.com/hashicorp/go-hclog"
	plugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
)

// grpcPlugin is the go-plugin glue: the plugin side serves impl, the host side gets a Plugin.
type grpcPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	impl Plugin
}

func (p *grpcPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	devicev1.RegisterDeviceServiceServer(s, &grpcServer{impl: p.impl, log: pluginLogger()})
	return nil
}

func (p *grpcPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return &grpcClient{client: devicev1.NewDeviceServiceClient(c)}, nil
}

type loggerKey struct{}

// Logger returns the logger for the call ctx belongs to, already labelled with the RPC and device.
// Never log credentials: the host masks the secrets it knows, but a plugin must not rely on that.
func Logger(ctx context.Context) hclog.Logger {
	if l, ok := ctx.Value(loggerKey{}).(hclog.Logger); ok {
		return l
	}
	return hclog.Default()
}

// WithLogger returns ctx carrying l for Logger; for plugin tests that call an implementation directly.
func WithLogger(ctx context.Context, l hclog.Logger) context.Context {
	return context.WithValue(ctx, loggerKey{}, l)
}

// grpcServer adapts a Plugin to the generated service. The incoming ctx carries the host's
// deadline and is cancelled with the host's call, so it is passed on untouched.
type grpcServer struct {
	devicev1.UnimplementedDeviceServiceServer
	impl Plugin
	log  hclog.Logger
}

func (s *grpcServer) callContext(ctx context.Context, rpc string, t *devicev1.Target) context.Context {
	l := s.log.With("rpc", rpc)
	if t != nil && t.Name != "" {
		l = l.With("device", t.Name)
	}
	return WithLogger(ctx, l)
}

// result converts a plugin error for the wire (a context error becomes its own code) and logs it
// on the plugin's side, where the host may no longer be listening (a call that hit its deadline).
func result(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	out := AsError(err)
	if cerr := FromContext(ctx); cerr != nil && out.Code != cerr.Code {
		out = cerr.WithCause(err)
	}
	Logger(ctx).Debug("call failed", "code", out.Code.String(), "reason", out.Reason, "error", out.Error())
	return out
}

func (s *grpcServer) GetInfo(ctx context.Context, _ *devicev1.GetInfoRequest) (*devicev1.GetInfoResponse, error) {
	ctx = s.callContext(ctx, "GetInfo", nil)
	info, err := s.impl.Info(ctx)
	if err != nil {
		return nil, result(ctx, err)
	}
	return infoToProto(info), nil
}

func (s *grpcServer) CheckTarget(ctx context.Context, req *devicev1.CheckTargetRequest) (*devicev1.CheckTargetResponse, error) {
	ctx = s.callContext(ctx, "CheckTarget", req.Target)
	ti, err := s.impl.CheckTarget(ctx, targetFromProto(req.Target))
	if err != nil {
		return nil, result(ctx, err)
	}
	return &devicev1.CheckTargetResponse{
		Hostname: ti.Hostname, Model: ti.Model, SoftwareVersion: ti.SoftwareVersion,
		SerialNumber: ti.SerialNumber, HaRole: ti.HARole, Details: ti.Details,
	}, nil
}

func (s *grpcServer) Inventory(ctx context.Context, req *devicev1.InventoryRequest) (*devicev1.InventoryResponse, error) {
	ctx = s.callContext(ctx, "Inventory", req.Target)
	if req.FingerprintsOnly {
		ctx = WithFingerprintsOnly(ctx)
	}
	certs, err := s.impl.Inventory(ctx, targetFromProto(req.Target))
	if err != nil {
		return nil, result(ctx, err)
	}
	resp := &devicev1.InventoryResponse{Certificates: make([]*devicev1.DeviceCertificate, 0, len(certs))}
	for _, c := range certs {
		if req.FingerprintsOnly {
			// What the plugin filled anyway is not sent: the caller reads none of it.
			c = fingerprintsOnly(c)
		}
		resp.Certificates = append(resp.Certificates, deviceCertToProto(c))
	}
	return resp, nil
}

func (s *grpcServer) GenerateCSR(ctx context.Context, req *devicev1.GenerateCSRRequest) (*devicev1.GenerateCSRResponse, error) {
	ctx = s.callContext(ctx, "GenerateCSR", req.Target)
	csr, err := s.impl.GenerateCSR(ctx, targetFromProto(req.Target), CSRRequest{
		NameHint: req.NameHint, KeySpec: keySpecFromProto(req.KeySpec),
		Subject: subjectFromProto(req.Subject), SANs: sansFromProto(req.Sans), AttemptID: req.AttemptId,
	})
	if err != nil {
		return nil, result(ctx, err)
	}
	return &devicev1.GenerateCSRResponse{CsrPem: csr.PEM, KeyRef: csr.KeyRef}, nil
}

func (s *grpcServer) ImportCert(ctx context.Context, req *devicev1.ImportCertRequest) (*devicev1.ImportCertResponse, error) {
	ctx = s.callContext(ctx, "ImportCert", req.Target)
	res, err := s.impl.ImportCert(ctx, targetFromProto(req.Target), ImportRequest{
		KeyRef: req.KeyRef, CertPEM: req.CertPem, ChainPEM: req.ChainPem, NameHint: req.NameHint,
	})
	if err != nil {
		return nil, result(ctx, err)
	}
	return &devicev1.ImportCertResponse{CertRef: res.CertRef, ChainRefs: res.ChainRefs}, nil
}

func (s *grpcServer) Bind(ctx context.Context, req *devicev1.BindRequest) (*devicev1.BindResponse, error) {
	ctx = s.callContext(ctx, "Bind", req.Target)
	res, err := s.impl.Bind(ctx, targetFromProto(req.Target), BindRequest{
		CertRef: req.CertRef, KeyRef: req.KeyRef, Bindings: bindingsFromProto(req.Bindings),
	})
	if err != nil {
		return nil, result(ctx, err)
	}
	return &devicev1.BindResponse{RollbackToken: res.RollbackToken, PreviousCertRefs: res.PreviousCertRefs}, nil
}

func (s *grpcServer) Commit(ctx context.Context, req *devicev1.CommitRequest) (*devicev1.CommitResponse, error) {
	ctx = s.callContext(ctx, "Commit", req.Target)
	res, err := s.impl.Commit(ctx, targetFromProto(req.Target), CommitRequest{Description: req.Description})
	if err != nil {
		return nil, result(ctx, err)
	}
	return &devicev1.CommitResponse{Changed: res.Changed, JobId: res.JobID, Message: res.Message}, nil
}

func (s *grpcServer) Rollback(ctx context.Context, req *devicev1.RollbackRequest) (*devicev1.RollbackResponse, error) {
	ctx = s.callContext(ctx, "Rollback", req.Target)
	if err := s.impl.Rollback(ctx, targetFromProto(req.Target), req.RollbackToken); err != nil {
		return nil, result(ctx, err)
	}
	return &devicev1.RollbackResponse{}, nil
}

func (s *grpcServer) Cleanup(ctx context.Context, req *devicev1.CleanupRequest) (*devicev1.CleanupResponse, error) {
	ctx = s.callContext(ctx, "Cleanup", req.Target)
	objs := make([]ObjectRef, 0, len(req.Objects))
	for _, o := range req.Objects {
		objs = append(objs, ObjectRef{CertRef: o.CertRef, KeyRef: o.KeyRef})
	}
	results, err := s.impl.Cleanup(ctx, targetFromProto(req.Target), objs)
	if err != nil {
		return nil, result(ctx, err)
	}
	resp := &devicev1.CleanupResponse{}
	for _, r := range results {
		resp.Results = append(resp.Results, &devicev1.CleanupResult{
			Object:  &devicev1.ObjectRef{CertRef: r.Object.CertRef, KeyRef: r.Object.KeyRef},
			Removed: r.Removed, Reason: r.Reason,
		})
	}
	return resp, nil
}

// grpcClient is the host side: a Plugin whose calls cross to the plugin process. ctx goes into
// every call so the deadline and cancellation reach the plugin; errors come back as *Error.
type grpcClient struct {
	client devicev1.DeviceServiceClient
}

func (c *grpcClient) Info(ctx context.Context) (Info, error) {
	resp, err := c.client.GetInfo(ctx, &devicev1.GetInfoRequest{})
	if err != nil {
		return Info{}, AsError(err)
	}
	return infoFromProto(resp), nil
}

func (c *grpcClient) CheckTarget(ctx context.Context, t Target) (TargetInfo, error) {
	pt, err := targetToProto(t)
	if err != nil {
		return TargetInfo{}, err
	}
	resp, err := c.client.CheckTarget(ctx, &devicev1.CheckTargetRequest{Target: pt})
	if err != nil {
		return TargetInfo{}, AsError(err)
	}
	return TargetInfo{
		Hostname: resp.Hostname, Model: resp.Model, SoftwareVersion: resp.SoftwareVersion,
		SerialNumber: resp.SerialNumber, HARole: resp.HaRole, Details: resp.Details,
	}, nil
}

func (c *grpcClient) Inventory(ctx context.Context, t Target) ([]DeviceCertificate, error) {
	pt, err := targetToProto(t)
	if err != nil {
		return nil, err
	}
	resp, err := c.client.Inventory(ctx, &devicev1.InventoryRequest{Target: pt, FingerprintsOnly: FingerprintsOnly(ctx)})
	if err != nil {
		return nil, AsError(err)
	}
	out := make([]DeviceCertificate, 0, len(resp.Certificates))
	for _, dc := range resp.Certificates {
		out = append(out, deviceCertFromProto(dc))
	}
	return out, nil
}

func (c *grpcClient) GenerateCSR(ctx context.Context, t Target, req CSRRequest) (CSR, error) {
	pt, err := targetToProto(t)
	if err != nil {
		return CSR{}, err
	}
	resp, err := c.client.GenerateCSR(ctx, &devicev1.GenerateCSRRequest{
		Target: pt, NameHint: req.NameHint, KeySpec: keySpecToProto(req.KeySpec),
		Subject: subjectToProto(req.Subject), Sans: sansToProto(req.SANs), AttemptId: req.AttemptID,
	})
	if err != nil {
		return CSR{}, AsError(err)
	}
	return CSR{PEM: resp.CsrPem, KeyRef: resp.KeyRef}, nil
}

func (c *grpcClient) ImportCert(ctx context.Context, t Target, req ImportRequest) (ImportResult, error) {
	pt, err := targetToProto(t)
	if err != nil {
		return ImportResult{}, err
	}
	resp, err := c.client.ImportCert(ctx, &devicev1.ImportCertRequest{
		Target: pt, KeyRef: req.KeyRef, CertPem: req.CertPEM, ChainPem: req.ChainPEM, NameHint: req.NameHint,
	})
	if err != nil {
		return ImportResult{}, AsError(err)
	}
	return ImportResult{CertRef: resp.CertRef, ChainRefs: resp.ChainRefs}, nil
}

func (c *grpcClient) Bind(ctx context.Context, t Target, req BindRequest) (BindResult, error) {
	pt, err := targetToProto(t)
	if err != nil {
		return BindResult{}, err
	}
	bindings, err := bindingsToProto(req.Bindings)
	if err != nil {
		return BindResult{}, err
	}
	resp, err := c.client.Bind(ctx, &devicev1.BindRequest{
		Target: pt, CertRef: req.CertRef, KeyRef: req.KeyRef, Bindings: bindings,
	})
	if err != nil {
		return BindResult{}, AsError(err)
	}
	return BindResult{RollbackToken: resp.RollbackToken, PreviousCertRefs: resp.PreviousCertRefs}, nil
}

func (c *grpcClient) Commit(ctx context.Context, t Target, req CommitRequest) (CommitResult, error) {
	pt, err := targetToProto(t)
	if err != nil {
		return CommitResult{}, err
	}
	resp, err := c.client.Commit(ctx, &devicev1.CommitRequest{Target: pt, Description: req.Description})
	if err != nil {
		return CommitResult{}, AsError(err)
	}
	return CommitResult{Changed: resp.Changed, JobID: resp.JobId, Message: resp.Message}, nil
}

func (c *grpcClient) Rollback(ctx context.Context, t Target, token []byte) error {
	pt, err := targetToProto(t)
	if err != nil {
		return err
	}
	if _, err := c.client.Rollback(ctx, &devicev1.RollbackRequest{Target: pt, RollbackToken: token}); err != nil {
		return AsError(err)
	}
	return nil
}

func (c *grpcClient) Cleanup(ctx context.Context, t Target, objects []ObjectRef) ([]CleanupResult, error) {
	pt, err := targetToProto(t)
	if err != nil {
		return nil, err
	}
	req := &devicev1.CleanupRequest{Target: pt}
	for _, o := range objects {
		req.Objects = append(req.Objects, &devicev1.ObjectRef{CertRef: o.CertRef, KeyRef: o.KeyRef})
	}
	resp, err := c.client.Cleanup(ctx, req)
	if err != nil {
		return nil, AsError(err)
	}
	out := make([]CleanupResult, 0, len(resp.Results))
	for _, r := range resp.Results {
		res := CleanupResult{Removed: r.Removed, Reason: r.Reason}
		if r.Object != nil {
			res.Object = ObjectRef{CertRef: r.Object.CertRef, KeyRef: r.Object.KeyRef}
		}
		out = append(out, res)
	}
	return out, nil
}
