package icontrol

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

// Collections certfleet uses.
const (
	PathCryptoKey    = "/mgmt/tm/sys/crypto/key"
	PathCryptoCSR    = "/mgmt/tm/sys/crypto/csr"
	PathCryptoCert   = "/mgmt/tm/sys/crypto/cert"
	PathFileCert     = "/mgmt/tm/sys/file/ssl-cert"
	PathFileKey      = "/mgmt/tm/sys/file/ssl-key"
	PathFileCSR      = "/mgmt/tm/sys/file/ssl-csr"
	PathClientSSL    = "/mgmt/tm/ltm/profile/client-ssl"
	PathVirtual      = "/mgmt/tm/ltm/virtual"
	PathFolder       = "/mgmt/tm/sys/folder"
	PathDevice       = "/mgmt/tm/cm/device"
	PathTransaction  = "/mgmt/tm/transaction"
	PathUploads      = "/mgmt/shared/file-transfer/uploads"
	PathBulk         = "/mgmt/shared/file-transfer/bulk"
	PathSysConfig    = "/mgmt/tm/sys/config"
	PathCM           = "/mgmt/tm/cm"
	PathSyncStatus   = "/mgmt/tm/cm/sync-status"
	PathBash         = "/mgmt/tm/util/bash"
	PathUnixMv       = "/mgmt/tm/util/unix-mv"
	PathUnixRm       = "/mgmt/tm/util/unix-rm"
	DownloadsDir     = "/var/config/rest/downloads"
	BulkDir          = "/var/config/rest/bulk"
	coordinationHead = "X-F5-REST-Coordination-Id"
)

// Key is a key object (sys/crypto/key to create, sys/file/ssl-key to read).
type Key struct {
	Name         string `json:"name"`
	Partition    string `json:"partition,omitempty"`
	FullPath     string `json:"fullPath,omitempty"`
	KeyType      string `json:"keyType,omitempty"`
	KeySize      int    `json:"keySize,omitempty"`
	CurveName    string `json:"curveName,omitempty"`
	SecurityType string `json:"securityType,omitempty"`
	// Passphrase is sent when creating a password-protected key; the device returns it encrypted.
	Passphrase string `json:"passphrase,omitempty"`
}

// CertFile is a certificate file object (sys/file/ssl-cert), which carries the metadata.
type CertFile struct {
	Name                    string `json:"name"`
	Partition               string `json:"partition"`
	FullPath                string `json:"fullPath"`
	ExpirationDate          int64  `json:"expirationDate"`
	ExpirationString        string `json:"expirationString"`
	Subject                 string `json:"subject"`
	Issuer                  string `json:"issuer"`
	SubjectAlternativeName  string `json:"subjectAlternativeName"`
	SerialNumber            string `json:"serialNumber"`
	Fingerprint             string `json:"fingerprint"`
	KeyType                 string `json:"keyType"`
	CertificateKeySize      int    `json:"certificateKeySize"`
	CertificateKeyCurveName string `json:"certificateKeyCurveName"`
	IsBundle                string `json:"isBundle"`
}

// CertKeyChain is one certificate/key/chain entry of a client-ssl profile.
type CertKeyChain struct {
	Name  string `json:"name"`
	Cert  string `json:"cert,omitempty"`
	Key   string `json:"key,omitempty"`
	Chain string `json:"chain,omitempty"`
	// Passphrase for a password-protected key; never returned in plain text.
	Passphrase string `json:"passphrase,omitempty"`
}

// ClientSSLProfile is an ltm client-ssl profile.
type ClientSSLProfile struct {
	Name         string         `json:"name"`
	Partition    string         `json:"partition,omitempty"`
	FullPath     string         `json:"fullPath,omitempty"`
	DefaultsFrom string         `json:"defaultsFrom,omitempty"`
	CertKeyChain []CertKeyChain `json:"certKeyChain,omitempty"`
	// Cert, Key and Chain are the legacy single-pair fields, mirrored from the default entry.
	Cert       string `json:"cert,omitempty"`
	Key        string `json:"key,omitempty"`
	Chain      string `json:"chain,omitempty"`
	ServerName string `json:"serverName,omitempty"`
	SniDefault string `json:"sniDefault,omitempty"`
	// Description marks the profiles certfleet makes for its PCI keys.
	Description string `json:"description,omitempty"`
}

// Path is the profile's full path.
func (p ClientSSLProfile) Path() string {
	if p.FullPath != "" {
		return p.FullPath
	}
	return "/" + p.Partition + "/" + p.Name
}

// Entries returns the profile's pairs, from certKeyChain or, when empty, the legacy fields.
func (p ClientSSLProfile) Entries() []CertKeyChain {
	if len(p.CertKeyChain) > 0 {
		return p.CertKeyChain
	}
	if p.Cert != "" || p.Key != "" {
		return []CertKeyChain{{Name: "default", Cert: p.Cert, Key: p.Key, Chain: p.Chain}}
	}
	return nil
}

// VirtualProfile is one profile attached to a virtual server.
type VirtualProfile struct {
	Name      string `json:"name"`
	Partition string `json:"partition,omitempty"`
	FullPath  string `json:"fullPath,omitempty"`
	Context   string `json:"context,omitempty"`
}

// Path is the profile's full path.
func (p VirtualProfile) Path() string {
	switch {
	case p.FullPath != "":
		return p.FullPath
	case strings.HasPrefix(p.Name, "/"):
		return p.Name
	case p.Partition != "":
		return "/" + p.Partition + "/" + p.Name
	}
	return "/Common/" + p.Name
}

// Virtual is an ltm virtual server, read with expandSubcollections=true.
type Virtual struct {
	Name              string `json:"name"`
	Partition         string `json:"partition"`
	FullPath          string `json:"fullPath"`
	Destination       string `json:"destination"`
	ProfilesReference struct {
		Link  string           `json:"link"`
		Items []VirtualProfile `json:"items"`
	} `json:"profilesReference"`
}

// Device is one cm device.
type Device struct {
	Name          string `json:"name"`
	Hostname      string `json:"hostname"`
	MarketingName string `json:"marketingName"`
	Product       string `json:"product"`
	Version       string `json:"version"`
	Build         string `json:"build"`
	ChassisID     string `json:"chassisId"`
	FailoverState string `json:"failoverState"`
	SelfDevice    string `json:"selfDevice"`
	ManagementIP  string `json:"managementIp"`
}

// GetVirtual reads a virtual server with its profiles inlined.
func (c *Client) GetVirtual(ctx context.Context, fullPath string) (Virtual, error) {
	var v Virtual
	err := c.Get(ctx, ObjectPath(PathVirtual, fullPath), &v, Query(url.Values{"expandSubcollections": {"true"}}))
	return v, err
}

// VirtualProfiles reads the profiles attached to a virtual server (the subcollection), for
// devices that do not inline it.
func (c *Client) VirtualProfiles(ctx context.Context, fullPath string) ([]VirtualProfile, error) {
	return List[VirtualProfile](ctx, c, ObjectPath(PathVirtual, fullPath)+"/profiles", nil)
}

// BeginTransaction opens a transaction; requests sent with InTransaction(id) are queued in it.
// /mgmt/shared calls (uploads) never join one, and GETs cannot run inside one.
func (c *Client) BeginTransaction(ctx context.Context) (int64, error) {
	var out struct {
		TransID int64  `json:"transId"`
		State   string `json:"state"`
	}
	if err := c.Send(ctx, http.MethodPost, PathTransaction, map[string]any{}, &out); err != nil {
		return 0, fmt.Errorf("start transaction: %w", err)
	}
	if out.TransID == 0 {
		return 0, fmt.Errorf("start transaction: the device answered without a transId")
	}
	return out.TransID, nil
}

// CommitTransaction runs every queued request as one change; the device applies all or none.
func (c *Client) CommitTransaction(ctx context.Context, id int64) error {
	var out struct {
		State         string `json:"state"`
		FailureReason string `json:"failureReason"`
	}
	path := PathTransaction + "/" + strconv.FormatInt(id, 10)
	if err := c.Send(ctx, http.MethodPatch, path, map[string]any{"state": "VALIDATING", "validateOnly": false}, &out); err != nil {
		return err
	}
	if out.State != "COMPLETED" {
		return &Error{Method: http.MethodPatch, Path: path, Status: http.StatusOK,
			Message: c.Scrub(fmt.Sprintf("transaction ended in state %s: %s", out.State, out.FailureReason))}
	}
	return nil
}

// DiscardTransaction drops a transaction that will not be committed.
func (c *Client) DiscardTransaction(ctx context.Context, id int64) error {
	return c.Send(ctx, http.MethodDelete, PathTransaction+"/"+strconv.FormatInt(id, 10), nil, nil)
}

var uploadName = regexp.MustCompile(`^[A-Za-z0-9._-]{1,200}$`)

// Upload sends data to /var/config/rest/downloads/<name> in chunks with Content-Range, and
// returns the path on the device.
func (c *Client) Upload(ctx context.Context, name string, data []byte) (string, error) {
	if !uploadName.MatchString(name) {
		return "", fmt.Errorf("upload file name %q: use letters, digits, '.', '_' and '-'", name)
	}
	if len(data) == 0 {
		return "", fmt.Errorf("upload %s: nothing to send", name)
	}
	local := DownloadsDir + "/" + name
	for start := 0; start < len(data); start += c.cfg.UploadChunkSize {
		end := min(start+c.cfg.UploadChunkSize, len(data))
		resp, err := c.do(ctx, request{
			method: http.MethodPost, path: PathUploads + "/" + name, body: data[start:end],
			contentType: "application/octet-stream",
			header:      http.Header{"Content-Range": {fmt.Sprintf("%d-%d/%d", start, end-1, len(data))}},
		})
		if err != nil {
			return "", fmt.Errorf("upload %s: %w", name, err)
		}
		var out struct {
			LocalFilePath string `json:"localFilePath"`
		}
		if json.Unmarshal(resp.body, &out) == nil && out.LocalFilePath != "" {
			local = out.LocalFilePath
		}
	}
	return local, nil
}

var contentRange = regexp.MustCompile(`^(\d+)-(\d+)/(\d+)$`)

// Download reads /mgmt/shared/file-transfer/bulk/<name> in chunks. The total size comes back in
// the Content-Range header; a first request that asks past the end of a small file is answered
// 400 with that header (as f5-ansible's download_file expects [single-source]).
func (c *Client) Download(ctx context.Context, name string) ([]byte, error) {
	if !uploadName.MatchString(name) {
		return nil, fmt.Errorf("download file name %q: use letters, digits, '.', '_' and '-'", name)
	}
	var out []byte
	size := -1
	for tries := 0; size < 0 || len(out) < size; tries++ {
		if tries > 100000 {
			return nil, fmt.Errorf("download %s: too many chunks", name)
		}
		start := len(out)
		end := start + c.cfg.UploadChunkSize - 1
		if size >= 0 && end >= size {
			end = size - 1
		}
		resp, err := c.do(ctx, request{method: http.MethodGet, path: PathBulk + "/" + name,
			contentType: "application/octet-stream",
			header:      http.Header{"Content-Range": {fmt.Sprintf("%d-%d/%d", start, end, max(size, 0))}}})
		total := -1
		if resp != nil {
			if m := contentRange.FindStringSubmatch(resp.header.Get("Content-Range")); m != nil {
				total, _ = strconv.Atoi(m[3])
			}
		}
		if err != nil {
			if resp != nil && resp.status == http.StatusBadRequest && size < 0 && total >= 0 {
				size = total
				continue
			}
			return nil, fmt.Errorf("download %s: %w", name, err)
		}
		if total < 0 {
			return nil, fmt.Errorf("download %s: the answer has no Content-Range", name)
		}
		size = total
		if len(resp.body) == 0 && len(out) < size {
			return nil, fmt.Errorf("download %s: empty chunk at %d of %d", name, start, size)
		}
		out = append(out, resp.body...)
	}
	return out, nil
}

// RunBash runs command with bash -c on the device and returns its output. The command must not
// contain a single quote; util/bash needs an administrator with shell access.
func (c *Client) RunBash(ctx context.Context, command string) (string, error) {
	if strings.Contains(command, "'") {
		return "", fmt.Errorf("bash command must not contain a single quote")
	}
	var out struct {
		CommandResult string `json:"commandResult"`
	}
	err := c.Send(ctx, http.MethodPost, PathBash, map[string]string{"command": "run", "utilCmdArgs": "-c '" + command + "'"}, &out)
	return out.CommandResult, err
}

// UnixMove moves a file on the device (util/unix-mv).
func (c *Client) UnixMove(ctx context.Context, from, to string) error {
	return c.runUtil(ctx, PathUnixMv, from+" "+to)
}

// UnixRemove deletes a file on the device (util/unix-rm).
func (c *Client) UnixRemove(ctx context.Context, path string) error {
	return c.runUtil(ctx, PathUnixRm, path)
}

func (c *Client) runUtil(ctx context.Context, path, args string) error {
	var out struct {
		CommandResult string `json:"commandResult"`
	}
	if err := c.Send(ctx, http.MethodPost, path, map[string]string{"command": "run", "utilCmdArgs": args}, &out); err != nil {
		return err
	}
	// The utilities answer 200 and put a failure in commandResult ("mv: cannot stat ...").
	if msg := strings.TrimSpace(out.CommandResult); msg != "" {
		return &Error{Method: http.MethodPost, Path: path, Status: http.StatusOK, Message: c.Scrub(msg)}
	}
	return nil
}

// SaveConfig writes the running configuration to disk (tmsh save sys config).
func (c *Client) SaveConfig(ctx context.Context) error {
	return c.Send(ctx, http.MethodPost, PathSysConfig, map[string]string{"command": "save"}, nil)
}

// ConfigSync pushes this device's configuration to a device group.
func (c *Client) ConfigSync(ctx context.Context, group string) error {
	return c.Send(ctx, http.MethodPost, PathCM, map[string]string{"command": "run", "utilCmdArgs": "config-sync to-group " + group}, nil)
}

// SyncStatus returns the device's sync status ("In Sync", "Changes Pending", ...) and summary.
func (c *Client) SyncStatus(ctx context.Context) (status, summary string, err error) {
	var out struct {
		Entries map[string]struct {
			NestedStats struct {
				Entries map[string]struct {
					Description string `json:"description"`
				} `json:"entries"`
			} `json:"nestedStats"`
		} `json:"entries"`
	}
	if err := c.Get(ctx, PathSyncStatus, &out); err != nil {
		return "", "", err
	}
	for _, e := range out.Entries {
		return e.NestedStats.Entries["status"].Description, e.NestedStats.Entries["summary"].Description, nil
	}
	return "", "", fmt.Errorf("GET %s: no status entry", PathSyncStatus)
}
