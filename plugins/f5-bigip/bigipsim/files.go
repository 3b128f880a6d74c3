package bigipsim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
)

const (
	downloadsDir = "/var/config/rest/downloads/"
	bulkDir      = "/var/config/rest/bulk/"
)

var (
	fileName     = regexp.MustCompile(`^[A-Za-z0-9._-]{1,200}$`)
	contentRange = regexp.MustCompile(`^(\d+)-(\d+)/(\d+)$`)
)

// upload is POST /mgmt/shared/file-transfer/uploads/<name>: one chunk per request, placed by its
// Content-Range "start-end/total"; a chunk starting at 0 starts the file over.
func (s *Sim) upload(w http.ResponseWriter, r *http.Request, name string, body []byte) {
	if !fileName.MatchString(name) {
		s.writeErr(w, r, nil, errf(http.StatusBadRequest, "invalid file name %q", name))
		return
	}
	m := contentRange.FindStringSubmatch(r.Header.Get("Content-Range"))
	if m == nil {
		s.writeErr(w, r, nil, errf(http.StatusBadRequest, "Content-Range header (start-end/total) is required"))
		return
	}
	start, _ := strconv.Atoi(m[1])
	end, _ := strconv.Atoi(m[2])
	total, _ := strconv.Atoi(m[3])
	switch {
	case end < start || end >= total:
		s.writeErr(w, r, nil, errf(http.StatusBadRequest, "invalid Content-Range %s", m[0]))
		return
	case len(body) != end-start+1:
		s.writeErr(w, r, nil, errf(http.StatusBadRequest, "Content-Range %s does not match a body of %d bytes", m[0], len(body)))
		return
	case len(body) > s.cfg.MaxUploadChunk:
		s.writeErr(w, r, nil, errf(http.StatusBadRequest, "chunk of %d bytes is larger than the %d allowed", len(body), s.cfg.MaxUploadChunk))
		return
	}
	path := downloadsDir + name
	s.mu.Lock()
	cur := s.files[path]
	if start == 0 {
		cur = nil
	}
	if start != len(cur) {
		s.mu.Unlock()
		s.writeErr(w, r, nil, errf(http.StatusBadRequest, "chunk starts at %d but %d bytes were received", start, len(cur)))
		return
	}
	cur = append(append([]byte(nil), cur...), body...)
	s.files[path] = cur
	s.mu.Unlock()
	s.writeJSON(w, http.StatusOK, map[string]any{
		"remainingByteCount": total - len(cur), "usedChunks": map[string]int{strconv.Itoa(start): len(body)},
		"totalByteCount": total, "localFilePath": path, "temporaryFilePath": downloadsDir + "tmp/" + name,
		"generation": 0, "lastUpdateMicros": time.Now().UnixMicro(),
	})
}

// bulkDownload is GET /mgmt/shared/file-transfer/bulk/<name> with Content-Range "start-end/x".
// Asking past the end answers 400 with the real size in Content-Range (f5-ansible's
// download_file relies on this [single-source]).
func (s *Sim) bulkDownload(w http.ResponseWriter, r *http.Request, name string) {
	if !fileName.MatchString(name) {
		s.writeErr(w, r, nil, errf(http.StatusBadRequest, "invalid file name %q", name))
		return
	}
	s.mu.RLock()
	data, ok := s.files[bulkDir+name]
	s.mu.RUnlock()
	if !ok {
		s.writeErr(w, r, nil, errf(http.StatusNotFound, "File %s not found", bulkDir+name))
		return
	}
	start, end := 0, len(data)-1
	if m := contentRange.FindStringSubmatch(r.Header.Get("Content-Range")); m != nil {
		start, _ = strconv.Atoi(m[1])
		end, _ = strconv.Atoi(m[2])
	}
	if start < 0 || end < start || end >= len(data) {
		w.Header().Set("Content-Range", fmt.Sprintf("0-%d/%d", len(data)-1, len(data)))
		s.writeErr(w, r, nil, errf(http.StatusBadRequest, "Content-Range %d-%d is outside the file (%d bytes)", start, end, len(data)))
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Range", fmt.Sprintf("%d-%d/%d", start, end, len(data)))
	w.Header().Set("Content-Length", strconv.Itoa(end-start+1))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(data[start : end+1])
}

var bashCSR = regexp.MustCompile(`^-c\s+['"]tmsh list sys crypto csr (\S+)['"]$`)

// bash is util/bash. The sim runs one command, the one certfleet uses to read a CSR:
// "tmsh list sys crypto csr <name>", which prints the PEM and then the object.
func (s *Sim) bash(body []byte) (any, *apiErr) {
	var in struct {
		Command     string `json:"command"`
		UtilCmdArgs string `json:"utilCmdArgs"`
	}
	if err := json.Unmarshal(body, &in); err != nil || in.Command != "run" {
		return nil, errf(http.StatusBadRequest, "want {\"command\":\"run\",\"utilCmdArgs\":\"-c '...'\"}")
	}
	m := bashCSR.FindStringSubmatch(strings.TrimSpace(in.UtilCmdArgs))
	if m == nil {
		return nil, errf(http.StatusBadRequest, "bigipsim runs only -c 'tmsh list sys crypto csr <name>' in util/bash")
	}
	path, err := fullPath(m[1], "")
	result := ""
	s.mu.RLock()
	c, ok := s.running.csrs[path]
	data, haveFile := s.files[c.systemPath]
	s.mu.RUnlock()
	switch {
	case err != nil:
		result = fmt.Sprintf("Syntax Error: %q invalid object name\n", m[1])
	case !ok:
		result = fmt.Sprintf("01020036:3: The requested Certificate Signing Request (%s) was not found.\n", path)
	case !haveFile:
		result = fmt.Sprintf("01070712:3: Caught SSL exception: unable to open %s\n", c.systemPath)
	default:
		_, short := splitPath(path)
		result = string(data) + fmt.Sprintf("sys crypto csr %s {\n    key %s\n}\n", short, c.key)
	}
	return map[string]any{"kind": "tm:util:bash:runstate", "command": "run", "utilCmdArgs": in.UtilCmdArgs, "commandResult": result}, nil
}

// unixUtil is util/unix-mv and util/unix-rm on the device's files; failures come back in
// commandResult with status 200, as the shell utilities print them.
func (s *Sim) unixUtil(coll string, body []byte) (any, *apiErr) {
	var in struct {
		Command     string `json:"command"`
		UtilCmdArgs string `json:"utilCmdArgs"`
	}
	if err := json.Unmarshal(body, &in); err != nil || in.Command != "run" {
		return nil, errf(http.StatusBadRequest, "want {\"command\":\"run\",\"utilCmdArgs\":\"...\"}")
	}
	args := strings.Fields(in.UtilCmdArgs)
	result := ""
	s.mu.Lock()
	switch coll {
	case "util/unix-mv":
		if len(args) != 2 {
			s.mu.Unlock()
			return nil, errf(http.StatusBadRequest, "unix-mv needs a source and a destination")
		}
		data, ok := s.files[args[0]]
		switch {
		case !ok:
			result = fmt.Sprintf("/bin/mv: cannot stat '%s': No such file or directory\n", args[0])
		case !writable(args[1]):
			result = fmt.Sprintf("/bin/mv: cannot move '%s' to '%s': Permission denied\n", args[0], args[1])
		default:
			delete(s.files, args[0])
			s.files[args[1]] = data
		}
	case "util/unix-rm":
		if len(args) != 1 {
			s.mu.Unlock()
			return nil, errf(http.StatusBadRequest, "unix-rm needs one path")
		}
		if _, ok := s.files[args[0]]; ok {
			delete(s.files, args[0])
		} else {
			result = fmt.Sprintf("/bin/rm: cannot remove '%s': No such file or directory\n", args[0])
		}
	}
	s.mu.Unlock()
	out := map[string]any{"kind": "tm:" + strings.ReplaceAll(coll, "/", ":") + ":runstate", "command": "run", "utilCmdArgs": in.UtilCmdArgs}
	if result != "" {
		out["commandResult"] = result
	}
	return out, nil
}

// writable: the directories a REST user may move files into (the REST areas, and back into the
// SSL file stores the files came from).
func writable(path string) bool {
	for _, dir := range []string{bulkDir, downloadsDir, "/config/ssl/", "/config/filestore/"} {
		if strings.HasPrefix(path, dir) && !strings.Contains(path, "..") {
			return true
		}
	}
	return false
}
