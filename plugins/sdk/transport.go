package sdk

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"time"
)

// TLSClientConfig builds the TLS configuration for a device's management API: verification on
// unless the user turned it off for this device, with the device's own CA bundle when given.
func TLSClientConfig(t TLSConfig) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName}
	if t.InsecureSkipVerify {
		cfg.InsecureSkipVerify = true //nolint:gosec // the user's explicit choice for this one device
		return cfg, nil
	}
	if t.CABundlePEM != "" {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM([]byte(t.CABundlePEM)) {
			return nil, InvalidArgument(ReasonInvalidRequest, "tls.ca_bundle holds no PEM certificate")
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

// NewHTTPClient returns an HTTP client for a device's management API. Every request must carry
// its call's ctx; timeout caps a single request besides that.
func NewHTTPClient(t Target, timeout time.Duration) (*http.Client, error) {
	tlsCfg, err := TLSClientConfig(t.TLS)
	if err != nil {
		return nil, err
	}
	transport := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       tlsCfg,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: timeout,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       60 * time.Second,
	}
	return &http.Client{Transport: transport, Timeout: timeout}, nil
}

// TransportError maps a failed HTTP round trip to the contract: a failed certificate check is not
// retryable and says how to fix it; anything else on the network is Unavailable (retryable).
func TransportError(ctx context.Context, address string, err error) *Error {
	if cerr := FromContext(ctx); cerr != nil {
		return cerr.WithCause(err)
	}
	var unknownAuthority x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var invalid x509.CertificateInvalidError
	var verify *tls.CertificateVerificationError
	if errors.As(err, &unknownAuthority) || errors.As(err, &hostname) || errors.As(err, &invalid) || errors.As(err, &verify) {
		return FailedPrecondition(ReasonTLSVerify,
			"TLS verification of %s failed; give the device's CA in tls.ca_bundle, set tls.server_name, or turn verification off for this device", address).WithCause(err)
	}
	return Unavailable("cannot reach %s", address).WithCause(err)
}
