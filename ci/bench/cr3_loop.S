/*
 * Benchmark workload, a bare-metal x86 kernel for qemu-system-x86_64: N
 * loads of CR3 (changes of address space), alternating between two page
 * directories, then exit through isa-debug-exit (port 0xf4, value 1: QEMU
 * exits with status 3, not the 1 of its own errors). The kernel command
 * line (-append) is "N" or "N paging"; N is 2 million by default, an odd
 * N counts as N - 1. asid_bench.c watches the loads; ci/bench/cr3-qemu.sh
 * runs it.
 *
 * QEMU starts it through its PVH entry note at _start in 32-bit protected
 * mode, flat segments, no paging, EBX pointing to struct hvm_start_info.
 * It stays in 32-bit mode. By default paging stays off: a load of CR3
 * only stores the value and reports the change to plugins (about 40 ns of
 * CPU in QEMU), so that a callback's few ns are measurable. With "paging",
 * the two page directories both identity-map the first 4 MiB with one
 * 4 MiB page (PSE), paging is on, and each load flushes QEMU's TLB, as a
 * process switch of a guest without PCIDs does (about 1.4 us).
 */
        .set DEFAULT_N, 2000000
        .set PDE_4M, 0x83               /* present, writable, 4 MiB page */

        .section .note.Xen, "a"
        .align 4
        .long 4                         /* name size */
        .long 4                         /* descriptor size */
        .long 18                        /* XEN_ELFNOTE_PHYS32_ENTRY */
        .asciz "Xen"
        .long _start

        .text
        .code32
        .globl _start
_start:
        cli
        /* N: the decimal digits of the command line (cmdline_paddr, at 24) */
        movl 24(%ebx), %esi
        xorl %ecx, %ecx
        testl %esi, %esi
        jz 2f
1:      movzbl (%esi), %eax
        subl $'0', %eax
        cmpl $9, %eax
        ja 2f
        imull $10, %ecx, %ecx
        addl %eax, %ecx
        incl %esi
        jmp 1b
2:      xorl %edi, %edi                 /* EDI: paging on if 1 */
        testl %esi, %esi
        jz 3f
        cmpl $0x67617020, (%esi)        /* " pag", little-endian */
        jne 3f
        incl %edi
3:      testl %ecx, %ecx
        jnz 4f
        movl $DEFAULT_N, %ecx
4:      shrl $1, %ecx                   /* two loads per iteration */
        jz 6f

        movl $PDE_4M, pd_a
        movl $PDE_4M, pd_b
        movl %cr4, %eax
        orl $0x10, %eax                 /* PSE */
        movl %eax, %cr4
        movl $pd_a, %eax
        movl $pd_b, %edx
        movl %eax, %cr3
        testl %edi, %edi
        jz 5f
        movl %cr0, %ebx
        orl $0x80000000, %ebx           /* PG */
        movl %ebx, %cr0

        /* The loop: 2 changes of address space per iteration */
5:      movl %edx, %cr3
        movl %eax, %cr3
        decl %ecx
        jnz 5b

6:      movl $1, %eax
        movw $0xf4, %dx
        outl %eax, %dx
7:      hlt
        jmp 7b

        .bss
        .align 4096
pd_a:   .skip 4096
pd_b:   .skip 4096
