package nitro

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"path"
)

const cfg = "/nitro/v1/config/"

// SSLDir is where keys, CSRs and certificates live on the appliance (reference §2).
const SSLDir = "/nsconfig/ssl"

// CertKey is one sslcertkey as GET returns it.
type CertKey struct {
	CertKey          string   `json:"certkey"`
	Cert             string   `json:"cert"`
	Key              string   `json:"key,omitempty"`
	Serial           string   `json:"serial,omitempty"`
	Subject          string   `json:"subject,omitempty"`
	Issuer           string   `json:"issuer,omitempty"`
	DaysToExpiration Flex     `json:"daystoexpiration"`
	NotAfter         string   `json:"clientcertnotafter,omitempty"`
	Status           string   `json:"status,omitempty"`
	LinkCertKeyName  string   `json:"linkcertkeyname,omitempty"`
	CertificateType  []string `json:"certificatetype,omitempty"`
}

// VServerBinding is one sslvserver_sslcertkey_binding entry.
type VServerBinding struct {
	VServerName string   `json:"vservername"`
	CertKeyName string   `json:"certkeyname"`
	SNICert     FlexBool `json:"snicert"`
	CA          FlexBool `json:"ca"`
}

// VServer is the part of an lbvserver/vpnvserver the plugin reads.
type VServer struct {
	Name        string `json:"name"`
	ServiceType string `json:"servicetype"`
}

// decodeList pulls the array under key out of a GET body; a missing key means no objects.
func decodeList(raw []byte, key string, out any) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return fmt.Errorf("decode %s: %w", key, err)
	}
	v, ok := m[key]
	if !ok {
		return nil
	}
	if err := json.Unmarshal(v, out); err != nil {
		return fmt.Errorf("decode %s: %w", key, err)
	}
	return nil
}

// Version returns the nsversion string.
func (c *Client) Version(ctx context.Context) (string, error) {
	raw, err := c.Call(ctx, http.MethodGet, cfg+"nsversion", nil, nil)
	if err != nil {
		return "", err
	}
	var v []struct {
		Version string `json:"version"`
	}
	if err := decodeList(raw, "nsversion", &v); err != nil || len(v) == 0 {
		return "", fmt.Errorf("nsversion: no version in the answer")
	}
	return v[0].Version, nil
}

// CreateRSAKey makes an RSA key file on the appliance.
func (c *Client) CreateRSAKey(ctx context.Context, keyfile string, bits int) error {
	_, err := c.Call(ctx, http.MethodPost, cfg+"sslrsakey", url.Values{"action": {"create"}},
		map[string]any{"sslrsakey": map[string]any{"keyfile": keyfile, "bits": bits, "exponent": "F4", "keyform": "PEM"}})
	return err
}

// CreateECDSAKey makes an ECDSA key file; curve is P_256 or P_384.
func (c *Client) CreateECDSAKey(ctx context.Context, keyfile, curve string) error {
	_, err := c.Call(ctx, http.MethodPost, cfg+"sslecdsakey", url.Values{"action": {"create"}},
		map[string]any{"sslecdsakey": map[string]any{"keyfile": keyfile, "curve": curve, "keyform": "PEM"}})
	return err
}

// CertReq holds the sslcertreq fields the plugin sends.
type CertReq struct {
	ReqFile          string `json:"reqfile"`
	KeyFile          string `json:"keyfile"`
	KeyForm          string `json:"keyform"`
	CountryName      string `json:"countryname"`
	StateName        string `json:"statename"`
	OrganizationName string `json:"organizationname"`
	OrganizationUnit string `json:"organizationunitname,omitempty"`
	LocalityName     string `json:"localityname,omitempty"`
	CommonName       string `json:"commonname"`
	EmailAddress     string `json:"emailaddress,omitempty"`
	SubjectAltName   string `json:"subjectaltname,omitempty"`
	DigestMethod     string `json:"digestmethod"`
}

// CreateCertReq makes a CSR file on the appliance.
func (c *Client) CreateCertReq(ctx context.Context, r CertReq) error {
	_, err := c.Call(ctx, http.MethodPost, cfg+"sslcertreq", url.Values{"action": {"create"}}, map[string]any{"sslcertreq": r})
	return err
}

// Upload creates a file (filename without path under location); 1642 if it exists.
func (c *Client) Upload(ctx context.Context, location, filename string, content []byte) error {
	_, err := c.Call(ctx, http.MethodPost, cfg+"systemfile", nil, map[string]any{"systemfile": map[string]any{
		"filename": filename, "filelocation": location, "filecontent": base64.StdEncoding.EncodeToString(content), "fileencoding": "BASE64",
	}})
	return err
}

// Download returns a file's bytes; found is false when the device answers with no entry.
func (c *Client) Download(ctx context.Context, fullpath string) (data []byte, found bool, err error) {
	raw, err := c.Call(ctx, http.MethodGet, cfg+"systemfile", url.Values{"args": {Args("filename", path.Base(fullpath), "filelocation", path.Dir(fullpath))}}, nil)
	if err != nil {
		return nil, false, err
	}
	var files []struct {
		FileContent string `json:"filecontent"`
	}
	if err := decodeList(raw, "systemfile", &files); err != nil {
		return nil, false, err
	}
	if len(files) == 0 {
		return nil, false, nil
	}
	data, err = base64.StdEncoding.DecodeString(files[0].FileContent)
	if err != nil {
		return nil, false, fmt.Errorf("systemfile %s: filecontent is not base64: %w", fullpath, err)
	}
	return data, true, nil
}

// DeleteFile removes a file.
func (c *Client) DeleteFile(ctx context.Context, fullpath string) error {
	_, err := c.Call(ctx, http.MethodDelete, cfg+"systemfile/"+PathEscape(path.Base(fullpath)),
		url.Values{"args": {Args("filelocation", path.Dir(fullpath))}}, nil)
	return err
}

// CertKeys lists every sslcertkey.
func (c *Client) CertKeys(ctx context.Context) ([]CertKey, error) {
	raw, err := c.Call(ctx, http.MethodGet, cfg+"sslcertkey", nil, nil)
	if err != nil {
		return nil, err
	}
	var out []CertKey
	return out, decodeList(raw, "sslcertkey", &out)
}

// GetCertKey returns one sslcertkey; found is false on 258 or an empty answer.
func (c *Client) GetCertKey(ctx context.Context, name string) (ck CertKey, found bool, err error) {
	raw, err := c.Call(ctx, http.MethodGet, cfg+"sslcertkey/"+PathEscape(name), nil, nil)
	if IsCode(err, CodeResourceMissing) {
		return CertKey{}, false, nil
	}
	if err != nil {
		return CertKey{}, false, err
	}
	var out []CertKey
	if err := decodeList(raw, "sslcertkey", &out); err != nil || len(out) == 0 {
		return CertKey{}, false, err
	}
	return out[0], true, nil
}

// AddCertKey adds a certkey; key is empty for a CA certificate.
func (c *Client) AddCertKey(ctx context.Context, name, cert, key string) error {
	body := map[string]any{"certkey": name, "cert": cert, "inform": "PEM"}
	if key != "" {
		body["key"] = key
		body["expirymonitor"] = "ENABLED"
		body["notificationperiod"] = 30
	}
	_, err := c.Call(ctx, http.MethodPost, cfg+"sslcertkey", nil, map[string]any{"sslcertkey": body})
	return err
}

// UpdateCertKey points an existing certkey at new files in place (action=update, nodomaincheck).
func (c *Client) UpdateCertKey(ctx context.Context, name, cert, key string) error {
	_, err := c.Call(ctx, http.MethodPost, cfg+"sslcertkey", url.Values{"action": {"update"}}, map[string]any{"sslcertkey": map[string]any{
		"certkey": name, "cert": cert, "key": key, "inform": "PEM", "nodomaincheck": true,
	}})
	return err
}

// Link links certkey to its issuer's certkey.
func (c *Client) Link(ctx context.Context, name, issuer string) error {
	_, err := c.Call(ctx, http.MethodPost, cfg+"sslcertkey", url.Values{"action": {"link"}},
		map[string]any{"sslcertkey": map[string]any{"certkey": name, "linkcertkeyname": issuer}})
	return err
}

// Unlink removes certkey's link.
func (c *Client) Unlink(ctx context.Context, name string) error {
	_, err := c.Call(ctx, http.MethodPost, cfg+"sslcertkey", url.Values{"action": {"unlink"}},
		map[string]any{"sslcertkey": map[string]any{"certkey": name}})
	return err
}

// DeleteCertKey removes a certkey (not its files).
func (c *Client) DeleteCertKey(ctx context.Context, name string) error {
	_, err := c.Call(ctx, http.MethodDelete, cfg+"sslcertkey/"+PathEscape(name), nil, nil)
	return err
}

// VServers lists lbvserver or vpnvserver objects (kind is the NITRO type name).
func (c *Client) VServers(ctx context.Context, kind string) ([]VServer, error) {
	raw, err := c.Call(ctx, http.MethodGet, cfg+kind, url.Values{"attrs": {"name,servicetype"}}, nil)
	if err != nil {
		return nil, err
	}
	var out []VServer
	return out, decodeList(raw, kind, &out)
}

// GetVServer returns one lbvserver/vpnvserver; found is false on 258/461 or an empty answer.
func (c *Client) GetVServer(ctx context.Context, kind, name string) (VServer, bool, error) {
	raw, err := c.Call(ctx, http.MethodGet, cfg+kind+"/"+PathEscape(name), url.Values{"attrs": {"name,servicetype"}}, nil)
	if IsCode(err, CodeResourceMissing, CodeVServerMissing) {
		return VServer{}, false, nil
	}
	if err != nil {
		return VServer{}, false, err
	}
	var out []VServer
	if err := decodeList(raw, kind, &out); err != nil || len(out) == 0 {
		return VServer{}, false, err
	}
	return out[0], true, nil
}

// Bindings lists the certkeys bound to an SSL vserver.
func (c *Client) Bindings(ctx context.Context, vserver string) ([]VServerBinding, error) {
	raw, err := c.Call(ctx, http.MethodGet, cfg+"sslvserver_sslcertkey_binding/"+PathEscape(vserver), nil, nil)
	if err != nil {
		return nil, err
	}
	var out []VServerBinding
	return out, decodeList(raw, "sslvserver_sslcertkey_binding", &out)
}

// Bind binds certkey to vserver as its default or SNI certificate.
func (c *Client) Bind(ctx context.Context, vserver, certkey string, sni bool) error {
	b := map[string]any{"vservername": vserver, "certkeyname": certkey}
	if sni {
		b["snicert"] = true
	}
	_, err := c.Call(ctx, http.MethodPut, cfg+"sslvserver_sslcertkey_binding", nil, map[string]any{"sslvserver_sslcertkey_binding": b})
	return err
}

// Unbind removes a certkey binding from vserver.
func (c *Client) Unbind(ctx context.Context, vserver, certkey string, sni bool) error {
	args := []string{"certkeyname", certkey}
	if sni {
		args = append(args, "snicert", "true")
	}
	_, err := c.Call(ctx, http.MethodDelete, cfg+"sslvserver_sslcertkey_binding/"+PathEscape(vserver), url.Values{"args": {Args(args...)}}, nil)
	return err
}

// EnableSNI turns SNI on for an SSL vserver.
func (c *Client) EnableSNI(ctx context.Context, vserver string) error {
	_, err := c.Call(ctx, http.MethodPut, cfg+"sslvserver", nil, map[string]any{"sslvserver": map[string]any{"vservername": vserver, "snienable": "ENABLED"}})
	return err
}

// SaveConfig runs "save ns config".
func (c *Client) SaveConfig(ctx context.Context) error {
	_, err := c.Call(ctx, http.MethodPost, cfg+"nsconfig", url.Values{"action": {"save"}}, map[string]any{"nsconfig": map[string]any{}})
	return err
}
