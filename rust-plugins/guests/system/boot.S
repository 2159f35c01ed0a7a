/*
 * Boot code of the bare-metal x86_64 test guest.
 *
 * QEMU loads the ELF with -kernel and, through the PVH entry note, starts
 * it at _start32 in 32-bit protected mode without paging. We identity-map
 * the first GiB with 2 MiB pages, enter long mode, call main() and report
 * its return value through isa-debug-exit (port 0xf4): QEMU exits with
 * status 2 * value + 1.
 *
 * The other vCPUs start at ap_trampoline once main() sends them a startup
 * IPI (see start_other_cpus in guest.c): each switches to long mode on the
 * same page tables and calls ap_main(n) on a stack of its own.
 */
/*
 * Paging on the page tables below, PAE, long mode and syscall: the vCPU
 * is in long mode once it loads a 64-bit code segment. Used in 32-bit
 * (boot vCPU) and 16-bit code (the others): the assembler encodes each.
 */
        .macro enter_long_mode
        movl $pml4, %eax
        movl %eax, %cr3
        movl %cr4, %eax
        orl $0x20, %eax                 /* PAE */
        movl %eax, %cr4
        movl $0xc0000080, %ecx          /* EFER */
        rdmsr
        orl $0x101, %eax                /* LME, SCE (syscall) */
        wrmsr
        movl %cr0, %eax
        orl $0x80000001, %eax           /* PG, PE */
        movl %eax, %cr0
        .endm

/* The data segment (GDT entry 0x10) in every data segment register. */
        .macro load_data_segments
        movw $0x10, %ax
        movw %ax, %ds
        movw %ax, %es
        movw %ax, %ss
        movw %ax, %fs
        movw %ax, %gs
        .endm

        .section .note.Xen, "a"
        .align 4
        .long 4                 /* name size */
        .long 8                 /* descriptor size */
        .long 18                /* XEN_ELFNOTE_PHYS32_ENTRY */
        .asciz "Xen"
        .quad _start32          /* QEMU reads 8 bytes for a 64-bit ELF */

        .section .text.boot, "ax"
        .code32
        .globl _start32
_start32:
        cli
        movl $pdpt, %eax
        orl $3, %eax                    /* present, writable */
        movl %eax, pml4
        movl $pd, %eax
        orl $3, %eax
        movl %eax, pdpt
        movl $pd, %edi
        movl $0x83, %eax                /* present, writable, 2 MiB */
        movl $512, %ecx
1:      movl %eax, (%edi)
        movl $0, 4(%edi)
        addl $0x200000, %eax
        addl $8, %edi
        loop 1b
        movl $pd_high, %eax             /* 3-4 GiB: the local APIC and */
        orl $3, %eax                    /* the unassigned 0xfe000000 */
        movl %eax, pdpt + 3 * 8
        movl $0xfe00009b, pd_high + 496 * 8     /* + uncached, 2 MiB */
        movl $0xfee0009b, pd_high + 503 * 8
        enter_long_mode
        lgdt gdt_desc
        ljmp $0x08, $start64

        .code64
start64:
        load_data_segments
        movq $stack_top, %rsp
        call main
        movl %eax, %eax
        movw $0xf4, %dx
        outl %eax, %dx
2:      hlt
        jmp 2b

/*
 * Entry of the guest's own syscall instruction (IA32_LSTAR). We stay in
 * ring 0: call syscall_dispatch(rax, rdi) and return to the caller.
 */
        .globl syscall_entry
syscall_entry:
        pushq %rcx                      /* return address */
        pushq %r11                      /* caller's rflags */
        movq %rdi, %rsi
        movq %rax, %rdi
        call syscall_dispatch
        popq %r11
        popq %rcx
        pushq %r11
        popfq
        jmp *%rcx

/*
 * The other vCPUs: main() copies this to AP_BASE (guest.c), below 1 MiB
 * where a startup IPI can start a vCPU in real mode. Straight from real
 * mode to long mode on the boot vCPU's page tables and GDT.
 */
        .set AP_STACKS, 7               /* 16 KiB each: up to 8 vCPUs */
        .code16
        .globl ap_trampoline, ap_trampoline_end
ap_trampoline:
        cli
        movw %cs, %ax
        movw %ax, %ds
        lgdtl ap_gdt_desc - ap_trampoline
        enter_long_mode
        ljmpl $0x08, $ap_start64
ap_gdt_desc:
        .word gdt_end - gdt - 1
        .long gdt
ap_trampoline_end:

        .code64
ap_start64:
        load_data_segments
        movl $1, %eax
        lock xaddl %eax, ap_next(%rip)  /* this vCPU's number, from 1 */
        cmpl $AP_STACKS, %eax
        ja 3f                           /* more vCPUs than stacks: stay off */
        movl %eax, %edi
        shlq $14, %rax
        leaq ap_stacks(%rip), %rsp
        addq %rax, %rsp                 /* top of stack edi - 1 */
        call ap_main
3:      cli
        hlt
        jmp 3b

        .data
        .align 4
ap_next:
        .long 1

        .section .rodata
        .align 8
gdt:
        .quad 0
        .quad 0x00af9a000000ffff        /* 0x08: 64-bit code */
        .quad 0x00cf92000000ffff        /* 0x10: data */
gdt_end:
gdt_desc:
        .word gdt_end - gdt - 1
        .long gdt

        .section .bss
        .align 4096
pml4:   .skip 4096
pdpt:   .skip 4096
pd:     .skip 4096
pd_high: .skip 4096
        .skip 16384
stack_top:
ap_stacks:
        .skip 16384 * AP_STACKS

        .section .note.GNU-stack, "", @progbits
