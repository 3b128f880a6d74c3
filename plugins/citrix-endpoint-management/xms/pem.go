package xms

import (
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// The export reply's sample in PDF-2021 prints the encrypted key and the certificate with no line
// breaks at all ("-----BEGIN RSA PRIVATE KEY-----Proc-Type: 4,ENCRYPTED DEK-Info: DES-EDE3-CBC,...")
// while the older documents only say a "certificate string" is shown (reference §2, "Export").
// ParsePEM reads either: it splits at the BEGIN/END markers, restores the Proc-Type and DEK-Info
// headers and drops whitespace from the base64.

var (
	pemBlockRE = regexp.MustCompile(`-----BEGIN ([A-Z0-9 ]+)-----(?s)(.*?)-----END ([A-Z0-9 ]+)-----`)
	procTypeRE = regexp.MustCompile(`Proc-Type:\s*(\d+,(?:ENCRYPTED|MIC-ONLY|MIC-CLEAR|CRL))`) // RFC 1421 §4.6.1.1
	dekInfoRE  = regexp.MustCompile(`DEK-Info:\s*([A-Z0-9-]+),([0-9A-Fa-f]+)`)
)

// ParsePEM returns every PEM block of text, in order, however its lines were broken.
func ParsePEM(text string) ([]*pem.Block, error) {
	matches := pemBlockRE.FindAllStringSubmatch(text, -1)
	if len(matches) == 0 {
		return nil, errors.New("no PEM block in the export reply")
	}
	blocks := make([]*pem.Block, 0, len(matches))
	for i, m := range matches {
		if m[1] != m[3] {
			return nil, fmt.Errorf("PEM block %d: BEGIN %s ends with END %s", i+1, m[1], m[3])
		}
		body := m[2]
		headers := map[string]string{}
		if pt := procTypeRE.FindStringSubmatchIndex(body); pt != nil {
			headers["Proc-Type"] = body[pt[2]:pt[3]]
			dek := dekInfoRE.FindStringSubmatchIndex(body)
			if dek == nil {
				return nil, fmt.Errorf("PEM block %d: Proc-Type without DEK-Info", i+1)
			}
			// The IV is one cipher block in hex; with no break after it, the base64 follows at once.
			cipher, iv := body[dek[2]:dek[3]], body[dek[4]:dek[5]]
			ivHex := 32 // AES
			if strings.HasPrefix(cipher, "DES") {
				ivHex = 16
			}
			if len(iv) < ivHex {
				return nil, fmt.Errorf("PEM block %d: DEK-Info IV too short", i+1)
			}
			headers["DEK-Info"] = cipher + "," + iv[:ivHex]
			body = body[dek[4]+ivHex:]
		}
		der, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(body), ""))
		if err != nil {
			return nil, fmt.Errorf("PEM block %d (%s): %w", i+1, m[1], err)
		}
		b := &pem.Block{Type: m[1], Bytes: der}
		if len(headers) > 0 {
			b.Headers = headers
		}
		blocks = append(blocks, b)
	}
	return blocks, nil
}
