package sopscodec

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/certfleet/certfleet/core/boundedfile"
	"github.com/certfleet/certfleet/core/secret"
)

// maxRequest bounds a request: a document of boundedfile.DefaultLimit, base64-encoded, and room
// for the rest.
const maxRequest = 2*boundedfile.DefaultLimit + 1<<20

// Serve answers the one request of a certfleet-sops run: it reads a secret.SopsHelperRequest from
// in and writes a secret.SopsHelperResponse to out. An operation that fails is answered with its
// error in the response; Serve's own error means no answer could be written.
func Serve(ctx context.Context, in io.Reader, out io.Writer) error {
	resp := answer(ctx, in)
	if err := json.NewEncoder(out).Encode(resp); err != nil {
		return fmt.Errorf("write the response: %w", err)
	}
	return nil
}

func answer(ctx context.Context, in io.Reader) *secret.SopsHelperResponse {
	fail := func(err error) *secret.SopsHelperResponse {
		return &secret.SopsHelperResponse{Error: secret.NewSopsHelperError(err)}
	}
	raw, err := io.ReadAll(io.LimitReader(in, maxRequest+1))
	if err != nil {
		return fail(fmt.Errorf("read the request: %w", err))
	}
	if len(raw) > maxRequest {
		return fail(fmt.Errorf("the request is larger than %d bytes", maxRequest))
	}
	var req secret.SopsHelperRequest
	if err := json.Unmarshal(raw, &req); err != nil {
		return fail(fmt.Errorf("unreadable request: %w", err))
	}
	if req.Protocol != secret.SopsHelperProtocol {
		return fail(fmt.Errorf("certfleet asked in protocol %d, this %s speaks %d: install certfleet and %[2]s from the same release", req.Protocol, secret.SopsHelperName, secret.SopsHelperProtocol))
	}
	switch req.Op {
	case secret.SopsOpDecrypt:
		d := &Decrypter{AgeIdentities: req.AgeIdentities, GnuPGHome: req.GnuPGHome}
		plain, err := d.DecryptData(ctx, req.Data, req.Format)
		switch {
		case errors.Is(err, secret.ErrNotEncrypted):
			return &secret.SopsHelperResponse{} // a plain document: certfleet reads it as it is
		case err != nil:
			return fail(err)
		}
		return &secret.SopsHelperResponse{Encrypted: true, Data: plain}
	case secret.SopsOpEncrypt:
		if req.Encrypt == nil {
			return fail(errors.New("an encrypt request without options"))
		}
		enc, err := Encrypt(ctx, req.Data, req.Format, *req.Encrypt)
		if err != nil {
			return fail(err)
		}
		return &secret.SopsHelperResponse{Data: enc}
	}
	return fail(fmt.Errorf("unknown operation %q", req.Op))
}
