// @NAME@: a hardware manager for ironic-wasm-agent in C (contract
// ironic:hardware@0.3.0), on the bindings wit-bindgen's C generator writes
// into gen/ (build.sh). Every export answers `unsupported` except info,
// evaluate-hardware-support and the example step, so the agent asks the
// next manager in support order for the rest.
//
// Memory: strings and lists handed to the host are malloc'd (the bindings
// free them after the call); parameters the host hands in are ours to free.
// Each call runs in a fresh instance, so nothing outlives it anyway.

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hardware_manager.h"

typedef hardware_manager_string_t str_t;
typedef exports_ironic_hardware_manager_manager_error_t error_t_;

// DMI sys_vendor of the machines this manager is for; NULL claims every machine.
static const char *const VENDOR = NULL;

// --- helpers ---

static void set_error(error_t_ *err, uint8_t tag, const char *message) {
    err->tag = tag;
    if (tag == IRONIC_HARDWARE_TYPES_MANAGER_ERROR_FAILED) {
        err->val.failed.error_type.is_some = false;
        hardware_manager_string_dup(&err->val.failed.details, message);
    } else {
        // unsupported, incompatible and invalid-argument all carry a string.
        hardware_manager_string_dup(&err->val.unsupported, message);
    }
}

static bool unsupported(error_t_ *err, const char *call) {
    set_error(err, IRONIC_HARDWARE_TYPES_MANAGER_ERROR_UNSUPPORTED, call);
    return false;
}

static void log_info(const char *message) {
    str_t m;
    hardware_manager_string_set(&m, message);
    ironic_hardware_log_log(IRONIC_HARDWARE_LOG_LEVEL_INFO, &m);
}

static void report_progress(uint8_t percent, const char *message) {
    str_t m;
    hardware_manager_string_set(&m, message);
    ironic_hardware_progress_report(&percent, &m);
}

// A file's text with trailing whitespace removed, malloc'd; "" when it
// cannot be read (absent, or not granted).
static char *read_trimmed(const char *path) {
    str_t p;
    hardware_manager_list_u8_t data;
    ironic_hardware_machine_machine_error_t err;
    hardware_manager_string_set(&p, path);
    if (!ironic_hardware_machine_read_file(&p, &data, &err)) {
        ironic_hardware_machine_machine_error_free(&err);
        return strdup("");
    }
    size_t len = data.len;
    while (len > 0 && (data.ptr[len - 1] == '\n' || data.ptr[len - 1] == ' ')) {
        len--;
    }
    char *out = malloc(len + 1);
    memcpy(out, data.ptr, len);
    out[len] = '\0';
    hardware_manager_list_u8_free(&data);
    return out;
}

// --- reading the step's arguments ---
// The arguments arrive as a JSON object. This reader finds top-level
// fields: nested values are skipped whole (a key of the same name inside
// them is not mistaken for the field), and strings are decoded (escapes,
// \uXXXX as UTF-8). For arguments with structure, use a JSON library
// (cJSON, compiled the same way; docs/managers/c.md).

typedef struct {
    const char *at, *end;
} cursor_t;

static void skip_space(cursor_t *c) {
    while (c->at < c->end && (*c->at == ' ' || *c->at == '\t' || *c->at == '\n' || *c->at == '\r')) {
        c->at++;
    }
}

// Past the string literal starting at c->at; false when it is unterminated.
static bool skip_string(cursor_t *c) {
    for (c->at++; c->at < c->end; c->at++) {
        if (*c->at == '\\') {
            c->at++;
        } else if (*c->at == '"') {
            c->at++;
            return true;
        }
    }
    return false;
}

// Past one value of any kind; false when malformed or nested too deep.
static bool skip_value(cursor_t *c, int depth) {
    skip_space(c);
    if (c->at >= c->end || depth > 64) {
        return false;
    }
    char open = *c->at;
    if (open == '"') {
        return skip_string(c);
    }
    if (open == '{' || open == '[') {
        char close = open == '{' ? '}' : ']';
        c->at++;
        skip_space(c);
        if (c->at < c->end && *c->at == close) {
            c->at++;
            return true;
        }
        for (;;) {
            if (open == '{') {
                skip_space(c);
                if (c->at >= c->end || *c->at != '"' || !skip_string(c)) {
                    return false;
                }
                skip_space(c);
                if (c->at >= c->end || *c->at++ != ':') {
                    return false;
                }
            }
            if (!skip_value(c, depth + 1)) {
                return false;
            }
            skip_space(c);
            if (c->at >= c->end) {
                return false;
            }
            char next = *c->at++;
            if (next == close) {
                return true;
            }
            if (next != ',') {
                return false;
            }
        }
    }
    // A number, true, false or null.
    const char *start = c->at;
    while (c->at < c->end && (isalnum((unsigned char)*c->at) || strchr("+-.", *c->at) != NULL)) {
        c->at++;
    }
    return c->at > start;
}

// The raw text of top-level field `key` of the JSON object `json` (the last
// one if repeated); false when absent or when `json` is not an object.
static bool json_field(const str_t *json, const char *key, cursor_t *value) {
    cursor_t c = {(const char *)json->ptr, (const char *)json->ptr + json->len};
    bool found = false;
    skip_space(&c);
    if (c.at >= c.end || *c.at++ != '{') {
        return false;
    }
    skip_space(&c);
    if (c.at < c.end && *c.at == '}') {
        return false;
    }
    for (;;) {
        skip_space(&c);
        const char *name = c.at;
        if (c.at >= c.end || *c.at != '"' || !skip_string(&c)) {
            return false;
        }
        size_t name_len = (size_t)(c.at - name) - 2;
        bool match = name_len == strlen(key) && memcmp(name + 1, key, name_len) == 0;
        skip_space(&c);
        if (c.at >= c.end || *c.at++ != ':') {
            return false;
        }
        skip_space(&c);
        const char *start = c.at;
        if (!skip_value(&c, 0)) {
            return false;
        }
        if (match) {
            value->at = start;
            value->end = c.at;
            found = true;
        }
        skip_space(&c);
        if (c.at >= c.end) {
            return false;
        }
        char next = *c.at++;
        if (next == '}') {
            return found;
        }
        if (next != ',') {
            return false;
        }
    }
}

static int hex4(const char *p) {
    int v = 0;
    for (int i = 0; i < 4; i++) {
        char h = p[i];
        v <<= 4;
        if (h >= '0' && h <= '9') {
            v |= h - '0';
        } else if (h >= 'a' && h <= 'f') {
            v |= h - 'a' + 10;
        } else if (h >= 'A' && h <= 'F') {
            v |= h - 'A' + 10;
        } else {
            return -1;
        }
    }
    return v;
}

static size_t put_utf8(char *out, unsigned cp) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

// The decoded string value of top-level field `key`, malloc'd; NULL when
// the field is absent (*present false) or not a string (*present true).
static char *json_string_field(const str_t *json, const char *key, bool *present) {
    cursor_t v;
    *present = json_field(json, key, &v);
    if (!*present || *v.at != '"') {
        return NULL;
    }
    // Decoding never lengthens: an escape is at least as long as its UTF-8.
    char *out = malloc((size_t)(v.end - v.at) + 1);
    size_t n = 0;
    const char *last = v.end - 1;  // the closing quote
    for (const char *p = v.at + 1; p < last; p++) {
        if (*p != '\\') {
            out[n++] = *p;
            continue;
        }
        p++;
        switch (*p) {
        case 'n': out[n++] = '\n'; break;
        case 't': out[n++] = '\t'; break;
        case 'r': out[n++] = '\r'; break;
        case 'b': out[n++] = '\b'; break;
        case 'f': out[n++] = '\f'; break;
        case 'u': {
            int cp = last - p > 4 ? hex4(p + 1) : -1;
            if (cp < 0) {
                free(out);
                return NULL;
            }
            p += 4;
            // A surrogate pair: one code point in two escapes.
            if (cp >= 0xD800 && cp <= 0xDBFF && last - p > 6 && p[1] == '\\' && p[2] == 'u') {
                int low = hex4(p + 3);
                if (low >= 0xDC00 && low <= 0xDFFF) {
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
                    p += 6;
                }
            }
            n += put_utf8(out + n, (unsigned)cp);
            break;
        }
        default: out[n++] = *p;  // \" \\ \/
        }
    }
    out[n] = '\0';
    return out;
}

// `s` as a JSON string literal (quotes included), malloc'd.
static char *json_quote(const char *s) {
    char *out = malloc(strlen(s) * 6 + 3);
    size_t n = 0;
    out[n++] = '"';
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            out[n++] = '\\';
            out[n++] = (char)c;
        } else if (c < 0x20) {
            n += (size_t)sprintf(out + n, "\\u%04x", c);
        } else {
            out[n++] = (char)c;
        }
    }
    out[n++] = '"';
    out[n] = '\0';
    return out;
}

// --- the manager ---

bool exports_ironic_hardware_manager_info(exports_ironic_hardware_manager_manager_info_t *ret,
                                          error_t_ *err) {
    (void)err;
    hardware_manager_string_dup(&ret->id, "@ID@");
    hardware_manager_string_dup(&ret->name, "@MANAGER_NAME@");
    hardware_manager_string_dup(&ret->version, "1.0");
    return true;
}

bool exports_ironic_hardware_manager_evaluate_hardware_support(uint32_t *ret, error_t_ *err) {
    (void)err;
    char *vendor = read_trimmed("/sys/class/dmi/id/sys_vendor");
    // 3: service provider; 0: not used.
    *ret = (VENDOR != NULL && strcmp(vendor, VENDOR) != 0) ? 0 : 3;
    free(vendor);
    return true;
}

bool exports_ironic_hardware_manager_get_steps(exports_ironic_hardware_manager_step_kind_t kind,
                                               str_t *node, str_t *ports,
                                               exports_ironic_hardware_manager_list_step_t *ret,
                                               error_t_ *err) {
    (void)err;
    hardware_manager_string_free(node);
    hardware_manager_string_free(ports);
    ret->ptr = NULL;
    ret->len = 0;
    if (kind != IRONIC_HARDWARE_TYPES_STEP_KIND_CLEAN) {
        return true;
    }
    exports_ironic_hardware_manager_step_t *step = calloc(1, sizeof *step);
    hardware_manager_string_dup(&step->name, "example_step");
    step->priority = 0;
    hardware_manager_string_dup(&step->interface, "deploy");
    step->reboot_requested = false;
    step->abortable.is_some = false;
    ironic_hardware_types_arg_info_t *arg = calloc(1, sizeof *arg);
    hardware_manager_string_dup(&arg->name, "message");
    hardware_manager_string_dup(&arg->description, "text to log and return");
    arg->required = true;
    step->argsinfo.is_some = true;
    step->argsinfo.val.ptr = arg;
    step->argsinfo.val.len = 1;
    ret->ptr = step;
    ret->len = 1;
    return true;
}

bool exports_ironic_hardware_manager_execute_step(exports_ironic_hardware_manager_step_kind_t kind,
                                                  str_t *name, str_t *node, str_t *ports,
                                                  str_t *args, str_t *ret, error_t_ *err) {
    bool ok = false;
    hardware_manager_string_free(node);
    hardware_manager_string_free(ports);
    if (kind != IRONIC_HARDWARE_TYPES_STEP_KIND_CLEAN || name->len != strlen("example_step") ||
        memcmp(name->ptr, "example_step", name->len) != 0) {
        char *call = strndup((const char *)name->ptr, name->len);
        unsupported(err, call);
        free(call);
        goto out;
    }
    bool present;
    char *message = json_string_field(args, "message", &present);
    if (message == NULL) {
        set_error(err, IRONIC_HARDWARE_TYPES_MANAGER_ERROR_INVALID_ARGUMENT,
                  present ? "step example_step: argument message must be a string"
                          : "step example_step: missing required argument message (text to log "
                            "and return)");
        goto out;
    }
    char line[256];
    snprintf(line, sizeof line, "example_step: %s", message);
    report_progress(50, line);
    log_info(line);
    char *vendor = read_trimmed("/sys/class/dmi/id/sys_vendor");
    char *qm = json_quote(message), *qv = json_quote(vendor);
    char *result = malloc(strlen(qm) + strlen(qv) + 40);
    sprintf(result, "{\"message\": %s, \"sys_vendor\": %s}", qm, qv);
    ret->ptr = (uint8_t *)result;
    ret->len = strlen(result);
    free(qm);
    free(qv);
    free(vendor);
    free(message);
    ok = true;
out:
    hardware_manager_string_free(name);
    hardware_manager_string_free(args);
    return ok;
}

// --- everything else: the next manager answers ---

bool exports_ironic_hardware_manager_get_cpus(exports_ironic_hardware_manager_cpu_t *ret, error_t_ *err) {
    (void)ret;
    return unsupported(err, "get-cpus");
}
bool exports_ironic_hardware_manager_get_memory(exports_ironic_hardware_manager_memory_t *ret, error_t_ *err) {
    (void)ret;
    return unsupported(err, "get-memory");
}
bool exports_ironic_hardware_manager_list_block_devices(
    exports_ironic_hardware_manager_list_block_device_t *ret, error_t_ *err) {
    (void)ret;
    return unsupported(err, "list-block-devices");
}
bool exports_ironic_hardware_manager_list_network_interfaces(
    exports_ironic_hardware_manager_list_network_interface_t *ret, error_t_ *err) {
    (void)ret;
    return unsupported(err, "list-network-interfaces");
}
bool exports_ironic_hardware_manager_get_bmc_address(hardware_manager_option_string_t *ret, error_t_ *err) {
    (void)ret;
    return unsupported(err, "get-bmc-address");
}
bool exports_ironic_hardware_manager_get_bmc_v6address(hardware_manager_option_string_t *ret, error_t_ *err) {
    (void)ret;
    return unsupported(err, "get-bmc-v6address");
}
bool exports_ironic_hardware_manager_get_bmc_mac(hardware_manager_option_string_t *ret, error_t_ *err) {
    (void)ret;
    return unsupported(err, "get-bmc-mac");
}
bool exports_ironic_hardware_manager_get_system_vendor_info(
    exports_ironic_hardware_manager_system_vendor_t *ret, error_t_ *err) {
    (void)ret;
    return unsupported(err, "get-system-vendor-info");
}
bool exports_ironic_hardware_manager_get_boot_info(exports_ironic_hardware_manager_boot_info_t *ret,
                                                   error_t_ *err) {
    (void)ret;
    return unsupported(err, "get-boot-info");
}
bool exports_ironic_hardware_manager_get_os_install_device(str_t *maybe_node, str_t *ret, error_t_ *err) {
    (void)ret;
    if (maybe_node) hardware_manager_string_free(maybe_node);
    return unsupported(err, "get-os-install-device");
}
