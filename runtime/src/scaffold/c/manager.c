// @NAME@: a hardware manager for ironic-wasm-agent in C (contract
// ironic:hardware@0.3.0), on the bindings wit-bindgen's C generator writes
// into gen/ (build.sh). Every export answers `unsupported` except info,
// evaluate-hardware-support and the example step, so the agent asks the
// next manager in support order for the rest.
//
// Memory: strings and lists handed to the host are malloc'd (the bindings
// free them after the call); parameters the host hands in are ours to free.
// Each call runs in a fresh instance, so nothing outlives it anyway.

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

// The string value of top-level key `key` in a JSON object, malloc'd, or
// NULL when absent or not a string. Enough for flat arguments; a manager
// with structured arguments should use a JSON library (e.g. cJSON).
static char *json_string_field(const str_t *json, const char *key) {
    char pattern[128];
    snprintf(pattern, sizeof pattern, "\"%s\"", key);
    char *text = strndup((const char *)json->ptr, json->len);
    char *at = strstr(text, pattern);
    char *out = NULL;
    if (at) {
        at += strlen(pattern);
        while (*at == ' ' || *at == ':') at++;
        if (*at == '"') {
            at++;
            out = malloc(strlen(at) + 1);
            size_t n = 0;
            for (; *at && *at != '"'; at++) {
                if (*at == '\\' && at[1]) at++;
                out[n++] = *at;
            }
            out[n] = '\0';
            if (*at != '"') {
                free(out);
                out = NULL;
            }
        }
    }
    free(text);
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
    char *message = json_string_field(args, "message");
    if (message == NULL) {
        set_error(err, IRONIC_HARDWARE_TYPES_MANAGER_ERROR_INVALID_ARGUMENT,
                  "step example_step: missing required argument message (text to log and return)");
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
