package nitro

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"strings"
)

const cfgPath = "/nitro/v1/config/"

// SSLDir is where keys, CSRs and certificates live on the appliance (reference §2).
const SSLDir = "/nsconfig/ssl"

// SSLPath resolves a file name as the appliance does: a name without a directory is in SSLDir.
func SSLPath(p string) string {
	if p == "" || strings.HasPrefix(p, "/") {
		return p
	}
	return SSLDir + "/" + p
}

// CertKey is one sslcertkey as GET returns it.
type CertKey struct {
	CertKey          string `json:"certkey"`
	Cert             string `json:"cert"`
	Key              string `json:"key,omitempty"`
	Serial           string `json:"serial,omitempty"`
	Subject          string `json:"subject,omitempty"`
	Issuer           string `json:"issuer,omitempty"`
	DaysToExpiration Flex   `json:"daystoexpiration"`
	NotAfter         string `json:"clientcertnotafter,omitempty"`
	Status           string `json:"status,omitempty"`
	LinkCertKeyName  string `json:"linkcertkeyname,omitempty"`
	// PublicKey is the key algorithm as "show ssl certKey" prints it: rsaEncryption, id-ecPublicKey.
	PublicKey string `json:"publickey,omitempty"`
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

// decodeList pulls the array under key out of a GET answer; a missing key means no objects.
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

func (c *Client) list(ctx context.Context, typ, name string, query url.Values, out any) error {
	p := cfgPath + typ
	if name != "" {
		p += "/" + PathEscape(name)
	}
	raw, err := c.Call(ctx, http.MethodGet, p, query, nil)
	if err != nil {
		return err
	}
	return decodeList(raw, typ, out)
}

func (c *Client) action(ctx context.Context, typ, action string, obj map[string]any) error {
	_, err := c.Call(ctx, http.MethodPost, cfgPath+typ, url.Values{"action": {action}}, map[string]any{typ: obj})
	return err
}

// IsMissing reports whether err says the object does not exist: 258, 1540 for a certkey, or
// HTTP 404 whatever the code (nitro-go treats 404 as not found), except a missing vserver (461).
func IsMissing(err error) bool {
	if IsCode(err, CodeResourceMissing, CodeCertKeyMissing) {
		return true
	}
	var ne *Error
	return errors.As(err, &ne) && ne.HTTPStatus == http.StatusNotFound && ne.Code != CodeVServerMissing
}

// Version returns the nsversion string.
func (c *Client) Version(ctx context.Context) (string, error) {
	var v []struct {
		Version string `json:"version"`
	}
	if err := c.list(ctx, "nsversion", "", nil, &v); err != nil {
		return "", err
	}
	if len(v) == 0 {
		return "", fmt.Errorf("nsversion: no version in the answer")
	}
	return v[0].Version, nil
}

// CreateRSAKey makes an RSA key file on the appliance.
func (c *Client) CreateRSAKey(ctx context.Context, keyfile string, bits int) error {
	return c.action(ctx, "sslrsakey", "create", map[string]any{"keyfile": keyfile, "bits": bits, "exponent": "F4", "keyform": "PEM"})
}

// CreateECDSAKey makes an ECDSA key file; curve is P_256 or P_384.
func (c *Client) CreateECDSAKey(ctx context.Context, keyfile, curve string) error {
	return c.action(ctx, "sslecdsakey", "create", map[string]any{"keyfile": keyfile, "curve": curve, "keyform": "PEM"})
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
	_, err := c.Call(ctx, http.MethodPost, cfgPath+"sslcertreq", url.Values{"action": {"create"}}, map[string]any{"sslcertreq": r})
	return err
}

// Upload creates a file (filename without directory) in location; errorcode 1642 if it exists.
func (c *Client) Upload(ctx context.Context, location, filename string, content []byte) error {
	_, err := c.Call(ctx, http.MethodPost, cfgPath+"systemfile", nil, map[string]any{"systemfile": map[string]any{
		"filename": filename, "filelocation": location, "filecontent": base64.StdEncoding.EncodeToString(content), "fileencoding": "BASE64",
	}})
	return err
}

// Download returns a file's bytes. found is false when the appliance answers with no entry or
// with "resource missing": which one a missing file gets is unconfirmed (reference §4), so both
// count as absent.
func (c *Client) Download(ctx context.Context, fullpath string) (data []byte, found bool, err error) {
	var files []struct {
		FileContent string `json:"filecontent"`
	}
	err = c.list(ctx, "systemfile", "", url.Values{"args": {Args("filename", path.Base(fullpath), "filelocation", path.Dir(fullpath))}}, &files)
	if IsMissing(err) {
		return nil, false, nil
	}
	if err != nil {
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

// DeleteFile removes a file; existed is false (and err nil) when there was no such file.
func (c *Client) DeleteFile(ctx context.Context, fullpath string) (existed bool, err error) {
	_, err = c.Call(ctx, http.MethodDelete, cfgPath+"systemfile/"+PathEscape(path.Base(fullpath)),
		url.Values{"args": {Args("filelocation", path.Dir(fullpath))}}, nil)
	if IsMissing(err) {
		return false, nil
	}
	return err == nil, err
}

// CertKeys lists every sslcertkey, with file names resolved as the appliance does.
func (c *Client) CertKeys(ctx context.Context) ([]CertKey, error) {
	var out []CertKey
	if err := c.list(ctx, "sslcertkey", "", nil, &out); err != nil {
		return nil, err
	}
	for i := range out {
		out[i].Cert, out[i].Key = SSLPath(out[i].Cert), SSLPath(out[i].Key)
	}
	return out, nil
}

// GetCertKey returns one sslcertkey; found is false when it does not exist.
func (c *Client) GetCertKey(ctx context.Context, name string) (ck CertKey, found bool, err error) {
	var out []CertKey
	err = c.list(ctx, "sslcertkey", name, nil, &out)
	if IsMissing(err) {
		return CertKey{}, false, nil
	}
	if err != nil || len(out) == 0 {
		return CertKey{}, false, err
	}
	ck = out[0]
	ck.Cert, ck.Key = SSLPath(ck.Cert), SSLPath(ck.Key)
	return ck, true, nil
}

// AddCertKey adds a certkey; key is empty for a CA certificate.
func (c *Client) AddCertKey(ctx context.Context, name, cert, key string) error {
	body := map[string]any{"certkey": name, "cert": cert, "inform": "PEM"}
	if key != "" {
		body["key"] = key
		body["expirymonitor"] = "ENABLED"
		body["notificationperiod"] = 30
	}
	_, err := c.Call(ctx, http.MethodPost, cfgPath+"sslcertkey", nil, map[string]any{"sslcertkey": body})
	return err
}

// UpdateCertKey points an existing certkey at other certificate and key files in place
// ("update ssl certKey ... -noDomainCheck"): its bindings and links stay.
func (c *Client) UpdateCertKey(ctx context.Context, name, cert, key string) error {
	return c.action(ctx, "sslcertkey", "update", map[string]any{"certkey": name, "cert": cert, "key": key, "inform": "PEM", "nodomaincheck": true})
}

// Link links certkey name to its issuer's certkey.
func (c *Client) Link(ctx context.Context, name, issuer string) error {
	return c.action(ctx, "sslcertkey", "link", map[string]any{"certkey": name, "linkcertkeyname": issuer})
}

// Unlink removes certkey name's link to its issuer.
func (c *Client) Unlink(ctx context.Context, name string) error {
	return c.action(ctx, "sslcertkey", "unlink", map[string]any{"certkey": name})
}

// DeleteCertKey removes a certkey (not its files).
func (c *Client) DeleteCertKey(ctx context.Context, name string) error {
	_, err := c.Call(ctx, http.MethodDelete, cfgPath+"sslcertkey/"+PathEscape(name), nil, nil)
	return err
}

// VServers lists the vservers of a NITRO type (lbvserver, vpnvserver).
func (c *Client) VServers(ctx context.Context, typ string) ([]VServer, error) {
	var out []VServer
	return out, c.list(ctx, typ, "", url.Values{"attrs": {"name,servicetype"}}, &out)
}

// AllBindings lists the certkey bindings of every SSL vserver in one request
// (GET sslvserver_sslcertkey_binding?bulkbindings=yes, NITRO docs "get (all)").
func (c *Client) AllBindings(ctx context.Context) ([]VServerBinding, error) {
	var out []VServerBinding
	return out, c.list(ctx, "sslvserver_sslcertkey_binding", "", url.Values{"bulkbindings": {"yes"}}, &out)
}

// Bindings lists the certkeys bound to one SSL vserver.
func (c *Client) Bindings(ctx context.Context, vserver string) ([]VServerBinding, error) {
	var out []VServerBinding
	return out, c.list(ctx, "sslvserver_sslcertkey_binding", vserver, nil, &out)
}

// Bind binds certkey to vserver as its default or SNI certificate.
func (c *Client) Bind(ctx context.Context, vserver, certkey string, sni bool) error {
	b := map[string]any{"vservername": vserver, "certkeyname": certkey}
	if sni {
		b["snicert"] = true
	}
	_, err := c.Call(ctx, http.MethodPut, cfgPath+"sslvserver_sslcertkey_binding", nil, map[string]any{"sslvserver_sslcertkey_binding": b})
	return err
}

// Unbind removes a certkey binding from vserver.
func (c *Client) Unbind(ctx context.Context, vserver, certkey string, sni bool) error {
	args := []string{"certkeyname", certkey}
	if sni {
		args = append(args, "snicert", "true")
	}
	_, err := c.Call(ctx, http.MethodDelete, cfgPath+"sslvserver_sslcertkey_binding/"+PathEscape(vserver), url.Values{"args": {Args(args...)}}, nil)
	return err
}

// Places lists where each certkey is bound: SSL vservers of any kind, SSL services and service
// groups, SSL profiles (GET sslcertkey_binding?bulkbindings=yes, NITRO docs sslcertkey_binding).
func (c *Client) Places(ctx context.Context) ([]CertKeyPlaces, error) {
	var out []CertKeyPlaces
	return out, c.list(ctx, "sslcertkey_binding", "", url.Values{"bulkbindings": {"yes"}}, &out)
}

// PlacesOf lists where one certkey is bound (GET sslcertkey_binding/<certkey>).
func (c *Client) PlacesOf(ctx context.Context, certkey string) ([]CertKeyPlaces, error) {
	var out []CertKeyPlaces
	return out, c.list(ctx, "sslcertkey_binding", certkey, nil, &out)
}

// CertKeyPlaces is one sslcertkey_binding entry.
type CertKeyPlaces struct {
	CertKey  string `json:"certkey"`
	VServers []struct {
		ServerName string `json:"servername"`
	} `json:"sslcertkey_sslvserver_binding"`
	Services []struct {
		ServiceName      string `json:"servicename"`
		ServiceGroupName string `json:"servicegroupname"`
	} `json:"sslcertkey_service_binding"`
	Profiles []struct {
		SSLProfile string `json:"sslprofile"`
	} `json:"sslcertkey_sslprofile_binding"`
}

// VPNGlobalCertKeys lists the certkeys bound to the global VPN (vpnglobal_sslcertkey_binding).
func (c *Client) VPNGlobalCertKeys(ctx context.Context) ([]string, error) {
	var out []struct {
		CertKeyName string `json:"certkeyname"`
	}
	if err := c.list(ctx, "vpnglobal_sslcertkey_binding", "", nil, &out); err != nil {
		return nil, err
	}
	names := make([]string, 0, len(out))
	for _, b := range out {
		names = append(names, b.CertKeyName)
	}
	return names, nil
}

// SAMLAction is the part of an authenticationsamlaction that names certkeys.
type SAMLAction struct {
	Name        string `json:"name"`
	IdPCert     string `json:"samlidpcertname"`
	SigningCert string `json:"samlsigningcertname"`
}

// SAMLActions lists the SAML actions with the certkeys they use.
func (c *Client) SAMLActions(ctx context.Context) ([]SAMLAction, error) {
	var out []SAMLAction
	return out, c.list(ctx, "authenticationsamlaction", "", url.Values{"attrs": {"name,samlidpcertname,samlsigningcertname"}}, &out)
}

// DefaultProfileEnabled reports "set ssl parameter -defaultProfile ENABLED".
func (c *Client) DefaultProfileEnabled(ctx context.Context) (bool, error) {
	var out []struct {
		DefaultProfile string `json:"defaultprofile"`
	}
	if err := c.list(ctx, "sslparameter", "", nil, &out); err != nil {
		return false, err
	}
	return len(out) > 0 && strings.EqualFold(out[0].DefaultProfile, "ENABLED"), nil
}

// SSLVServerSettings is the part of an sslvserver the plugin reads.
type SSLVServerSettings struct {
	SNIEnable  string `json:"snienable"`
	SSLProfile string `json:"sslprofile"`
}

// SSLVServer reads an SSL vserver's SNI setting and profile.
func (c *Client) SSLVServer(ctx context.Context, name string) (SSLVServerSettings, error) {
	var out []SSLVServerSettings
	if err := c.list(ctx, "sslvserver", name, nil, &out); err != nil || len(out) == 0 {
		return SSLVServerSettings{}, err
	}
	return out[0], nil
}

// ProfileSNI reports whether SNI is enabled on an SSL profile.
func (c *Client) ProfileSNI(ctx context.Context, profile string) (bool, error) {
	var out []struct {
		SNIEnable string `json:"snienable"`
	}
	if err := c.list(ctx, "sslprofile", profile, nil, &out); err != nil {
		return false, err
	}
	return len(out) > 0 && strings.EqualFold(out[0].SNIEnable, "ENABLED"), nil
}

// EnableProfileSNI turns SNI on in an SSL profile (PUT sslprofile {name, snienable}).
func (c *Client) EnableProfileSNI(ctx context.Context, profile string) error {
	_, err := c.Call(ctx, http.MethodPut, cfgPath+"sslprofile", nil, map[string]any{"sslprofile": map[string]any{"name": profile, "snienable": "ENABLED"}})
	return err
}

// EnableSNI turns SNI on for an SSL vserver.
func (c *Client) EnableSNI(ctx context.Context, vserver string) error {
	_, err := c.Call(ctx, http.MethodPut, cfgPath+"sslvserver", nil, map[string]any{"sslvserver": map[string]any{"vservername": vserver, "snienable": "ENABLED"}})
	return err
}

// SaveConfig runs "save ns config" for the session's partition.
func (c *Client) SaveConfig(ctx context.Context) error {
	return c.action(ctx, "nsconfig", "save", map[string]any{})
}
