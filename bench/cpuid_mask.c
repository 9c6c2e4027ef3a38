/* An LD_PRELOAD library that hides instruction sets from the CPUID
 * instruction, so that a program choosing its kernels at run time (TFLite's
 * XNNPACK, NumPy, BrainChip's engine, akida-rs itself) runs the kernels it
 * would run on a CPU without them: the benchmark's like-for-like comparison
 * of instruction sets on one machine (bench/throughput.sh, CPU_AS=...).
 *
 * How: Linux's CPUID faulting (`arch_prctl(ARCH_SET_CPUID, 0)`, CPU flag
 * `cpuid_fault`) makes every CPUID of the process raise SIGSEGV; the
 * handler runs the real CPUID (faulting off for that one instruction),
 * clears the hidden feature bits and resumes after the instruction. The
 * setting is per thread and inherited by threads created later; the
 * constructor runs before the program's own code (the dynamic loader and
 * libc have read CPUID already: their memcpy keeps its choice).
 *
 * CPUID_MASK (environment) names what to hide:
 *   avx2      AVX-512 (all of it), AVX-VNNI and AMX: an AVX2 CPU such as
 *             AMD Zen 2;
 *   avx512    AMX only: a CPU with AVX-512 VNNI and no tiles.
 *
 * Build: cc -O2 -shared -fPIC -o cpuid_mask.so cpuid_mask.c
 * Use:   CPUID_MASK=avx2 LD_PRELOAD=./cpuid_mask.so python3 ...
 */
#define _GNU_SOURCE
#include <cpuid.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#define ARCH_SET_CPUID 0x1012

static int hide_avx512;

static void set_faulting(int on) { syscall(SYS_arch_prctl, ARCH_SET_CPUID, on ? 0 : 1); }

/* Clears the hidden bits of leaf `leaf`, subleaf `sub`. */
static void mask(uint32_t leaf, uint32_t sub, uint32_t *a, uint32_t *b, uint32_t *c, uint32_t *d) {
    if (leaf == 7 && sub == 0) {
        /* EDX: AMX-BF16 (22), AMX-TILE (24), AMX-INT8 (25). */
        *d &= ~((1u << 22) | (1u << 24) | (1u << 25));
        if (hide_avx512) {
            /* EBX: AVX512 F 16, DQ 17, IFMA 21, PF 26, ER 27, CD 28, BW 30, VL 31. */
            *b &= ~((1u << 16) | (1u << 17) | (1u << 21) | (1u << 26) | (1u << 27) | (1u << 28) |
                    (1u << 30) | (1u << 31));
            /* ECX: VBMI 1, VBMI2 6, VNNI 11, BITALG 12, VPOPCNTDQ 14. */
            *c &= ~((1u << 1) | (1u << 6) | (1u << 11) | (1u << 12) | (1u << 14));
            /* EDX: 4VNNIW 2, 4FMAPS 3, VP2INTERSECT 8, FP16 23. */
            *d &= ~((1u << 2) | (1u << 3) | (1u << 8) | (1u << 23));
        }
    } else if (leaf == 7 && sub == 1) {
        /* EAX: AMX-FP16 (21); with AVX-512 also AVX-VNNI (4), AVX512-BF16 (5). */
        *a &= ~(1u << 21);
        if (hide_avx512) {
            *a &= ~((1u << 4) | (1u << 5));
        }
    } else if (leaf == 0xd && sub == 0) {
        /* The state components the hidden sets use: AMX tiles 17-18, and
         * with AVX-512 its opmask and upper registers 5-7. */
        *a &= ~((1u << 17) | (1u << 18));
        if (hide_avx512) {
            *a &= ~((1u << 5) | (1u << 6) | (1u << 7));
        }
    }
    (void)b;
}

static void on_segv(int sig, siginfo_t *info, void *ctx) {
    ucontext_t *uc = ctx;
    greg_t *r = uc->uc_mcontext.gregs;
    const uint8_t *ip = (const uint8_t *)r[REG_RIP];
    if (ip[0] != 0x0f || ip[1] != 0xa2) {
        /* A real fault: default action. */
        signal(sig, SIG_DFL);
        (void)info;
        return;
    }
    uint32_t leaf = (uint32_t)r[REG_RAX], sub = (uint32_t)r[REG_RCX];
    uint32_t a, b, c, d;
    set_faulting(0);
    __cpuid_count(leaf, sub, a, b, c, d);
    set_faulting(1);
    mask(leaf, sub, &a, &b, &c, &d);
    r[REG_RAX] = a;
    r[REG_RBX] = b;
    r[REG_RCX] = c;
    r[REG_RDX] = d;
    r[REG_RIP] += 2;
}

__attribute__((constructor)) static void cpuid_mask_init(void) {
    const char *what = getenv("CPUID_MASK");
    if (what == NULL || (strcmp(what, "avx2") != 0 && strcmp(what, "avx512") != 0)) {
        return;
    }
    hide_avx512 = strcmp(what, "avx2") == 0;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, NULL);
    set_faulting(1);
}
