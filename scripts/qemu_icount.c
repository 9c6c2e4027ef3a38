/*
 * QEMU TCG plugin: counts executed guest instructions, exactly (one inline
 * add per instruction), and records the running count each time the
 * instruction at `mark=ADDR` executes (the firmware's `akida_mark`, called
 * before and after every layer).
 *
 *   qemu-system-arm ... -plugin scripts/qemu_icount.so,mark=0x1234,out=counts.txt
 *
 * writes `insns TOTAL` and one `mark COUNT` line per marker execution to
 * `out`; with `profile=PATH`, the executions of every instruction address
 * (`HEXADDR COUNT` lines) to PATH. Debian ships no <qemu-plugin.h>: the few declarations of the
 * plugin API (version 1, QEMU 7.x) that this file uses are spelled out
 * below. Build: gcc -O2 -fPIC -shared -o qemu_icount.so qemu_icount.c
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --- the QEMU plugin API, version 1 (include/qemu/qemu-plugin.h) --- */
typedef uint64_t qemu_plugin_id_t;
typedef struct {
    const char *target_name;
    struct {
        int min;
        int cur;
    } version;
    bool system_emulation;
    union {
        struct {
            int smp_vcpus;
            int max_vcpus;
        } system;
    };
} qemu_info_t;
struct qemu_plugin_tb;
struct qemu_plugin_insn;
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };
enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS, QEMU_PLUGIN_CB_R_REGS, QEMU_PLUGIN_CB_RW_REGS };
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*qemu_plugin_vcpu_udata_cb_t)(unsigned int vcpu_index, void *userdata);
typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void *userdata);
void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_tb_trans_cb_t cb);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb, size_t idx);
uint64_t qemu_plugin_insn_vaddr(const struct qemu_plugin_insn *insn);
void qemu_plugin_register_vcpu_insn_exec_inline(struct qemu_plugin_insn *insn, enum qemu_plugin_op op,
                                                void *ptr, uint64_t imm);
void qemu_plugin_register_vcpu_insn_exec_cb(struct qemu_plugin_insn *insn, qemu_plugin_vcpu_udata_cb_t cb,
                                            enum qemu_plugin_cb_flags flags, void *userdata);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, qemu_plugin_udata_cb_t cb, void *userdata);
/* --- end of the API --- */

__attribute__((visibility("default"))) int qemu_plugin_version = 1;

static uint64_t insns;
static uint64_t mark_addr = UINT64_MAX;
static uint64_t *marks;
static size_t n_marks, cap_marks;
static char out_path[4096];
/* profile=PATH: executions per instruction address (code below 4 MiB). */
#define PROFILE_SPAN (4u << 20)
static uint64_t *profile;
static char profile_path[4096];

static void on_mark(unsigned int vcpu, void *udata) {
    (void)vcpu;
    (void)udata;
    if (n_marks == cap_marks) {
        cap_marks = cap_marks ? 2 * cap_marks : 1024;
        marks = realloc(marks, cap_marks * sizeof *marks);
        if (!marks) abort();
    }
    marks[n_marks++] = insns;
}

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb) {
    (void)id;
    size_t n = qemu_plugin_tb_n_insns(tb);
    for (size_t i = 0; i < n; i++) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        /* Thumb addresses: the marker's symbol value may carry the Thumb bit. */
        if ((qemu_plugin_insn_vaddr(insn) | 1) == (mark_addr | 1))
            qemu_plugin_register_vcpu_insn_exec_cb(insn, on_mark, QEMU_PLUGIN_CB_NO_REGS, NULL);
        qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64, &insns, 1);
        uint64_t pc = qemu_plugin_insn_vaddr(insn);
        if (profile && pc < PROFILE_SPAN)
            qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64, &profile[pc >> 1], 1);
    }
}

static void at_exit(qemu_plugin_id_t id, void *udata) {
    (void)id;
    (void)udata;
    FILE *f = out_path[0] ? fopen(out_path, "w") : stderr;
    if (!f) return;
    fprintf(f, "insns %" PRIu64 "\n", insns);
    for (size_t i = 0; i < n_marks; i++) fprintf(f, "mark %" PRIu64 "\n", marks[i]);
    if (f != stderr) fclose(f);
    if (profile) {
        FILE *p = fopen(profile_path, "w");
        if (!p) return;
        for (uint64_t i = 0; i < PROFILE_SPAN / 2; i++)
            if (profile[i]) fprintf(p, "%" PRIx64 " %" PRIu64 "\n", i << 1, profile[i]);
        fclose(p);
    }
}

__attribute__((visibility("default"))) int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info,
                                                               int argc, char **argv) {
    (void)info;
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "mark=", 5) == 0) {
            mark_addr = strtoull(argv[i] + 5, NULL, 0);
        } else if (strncmp(argv[i], "out=", 4) == 0) {
            snprintf(out_path, sizeof out_path, "%s", argv[i] + 4);
        } else if (strncmp(argv[i], "profile=", 8) == 0) {
            snprintf(profile_path, sizeof profile_path, "%s", argv[i] + 8);
            profile = calloc(PROFILE_SPAN / 2, sizeof *profile);
            if (!profile) return -1;
        } else {
            fprintf(stderr, "qemu_icount: unknown argument %s (mark=ADDR, out=PATH, profile=PATH)\n", argv[i]);
            return -1;
        }
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    qemu_plugin_register_atexit_cb(id, at_exit, NULL);
    return 0;
}
