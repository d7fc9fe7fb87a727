# The wire decoder's hot loop in Thumb code, for ARM boards: 16-bit samples whose
# Rice code has a unary part under 8 bits and k <= 9 (nearly every sample of music). Viper on
# armv6m keeps all but two locals on the stack and spends ~190 instructions a sample on it; this
# loop ~55. Only ARMv6-M instructions and r0-r7 (the RP2040's Cortex-M0+; armv7m runs them too).
# The host puts this module before firmware/wirecode.py, which finds `fast16`, on boards whose
# sys.implementation._mpy says armv6m or armv7m*. The function is assembled on the board, from
# the text below: so this module is bytecode that mpy-cross compiles for any board, and where
# the firmware has no inline assembler (a SyntaxError) `fast16` is None and the decoder is the
# viper one, as everywhere else.
#
# fast16(st): st is the decoder's state, int32 words, read at entry and written back at exit:
#   0 acc, 1 nb (the bit reader, as in wirecode.Decoder), 2 p (address of the next source byte),
#   3 the address past which it stops refilling (the viper code reads the payload's end),
#   4 dd, 5 v1 (the predictor), 6 d (address of the next sample), 7 m (samples left to decode),
#   8 sa, 9 sb (the checksum sums), 10 k, 11 (1 << k) - 1, 12 sh, 13 dm, 14 vm (the predictor's
#   masks), 15 the stride between a channel's samples (bytes), 16 the _LZ table's address, 17 k + 1.
# It stops, state saved, when m samples are done, at a sample whose unary part is 8 or more
# bits, or when a refill would read at or past word 3: the viper decoder goes on from there.
import micropython

_SOURCE = """
@micropython.asm_thumb
def fast16(r0):
    # r1 acc, r2 nb, r3 p, r7 m; r4-r6 scratch
    ldr(r1, [r0, 0])
    ldr(r2, [r0, 4])
    ldr(r3, [r0, 8])
    ldr(r7, [r0, 28])
    label(LOOP)
    cmp(r7, 0)
    beq(DONE)
    label(REFILL)  # nb <= 16: 16 more bits, big-endian
    cmp(r2, 16)
    bgt(READY)
    ldr(r4, [r0, 12])
    cmp(r3, r4)
    bcs(DONE)  # near the payload's end: the viper code reads it
    ldrb(r4, [r3, 0])
    ldrb(r5, [r3, 1])
    lsl(r1, r1, 16)
    lsl(r4, r4, 8)
    orr(r1, r4)
    orr(r1, r5)
    add(r3, 2)
    add(r2, 16)
    b(REFILL)
    label(READY)  # q = _LZ[(acc >> (nb - 8)) & 0xFF]
    mov(r4, r2)
    sub(r4, 8)
    mov(r5, r1)
    lsr(r5, r4)
    mov(r4, 0xFF)
    and_(r5, r4)
    ldr(r4, [r0, 64])
    add(r4, r4, r5)
    ldrb(r4, [r4, 0])
    cmp(r4, 8)
    bge(DONE)  # q >= 8: the viper code takes this sample
    ldr(r5, [r0, 68])  # nb -= q + k + 1; u = q << k | the k bits
    sub(r2, r2, r5)
    sub(r2, r2, r4)
    ldr(r5, [r0, 40])
    lsl(r4, r5)
    mov(r5, r1)
    lsr(r5, r2)
    ldr(r6, [r0, 44])
    and_(r5, r6)
    orr(r4, r5)
    mov(r5, 1)  # r = (u >> 1) ^ -(u & 1)
    and_(r5, r4)
    neg(r5, r5)
    lsr(r4, r4, 1)
    eor(r4, r5)
    ldr(r5, [r0, 16])  # dd = (dd & dm) + r; v1 = (v1 & vm) + dd
    ldr(r6, [r0, 52])
    and_(r5, r6)
    add(r5, r5, r4)
    str(r5, [r0, 16])
    ldr(r4, [r0, 20])
    ldr(r6, [r0, 56])
    and_(r4, r6)
    add(r4, r4, r5)
    str(r4, [r0, 20])
    ldr(r5, [r0, 48])  # the sample v1 << sh, stored; its 16 bits into the checksum
    lsl(r4, r5)
    ldr(r5, [r0, 24])
    strh(r4, [r5, 0])
    ldrh(r4, [r5, 0])
    ldr(r6, [r0, 60])
    add(r5, r5, r6)
    str(r5, [r0, 24])
    ldr(r5, [r0, 32])
    add(r5, r5, r4)
    str(r5, [r0, 32])
    ldr(r4, [r0, 36])
    add(r4, r4, r5)
    str(r4, [r0, 36])
    sub(r7, 1)
    b(LOOP)
    label(DONE)
    str(r1, [r0, 0])
    str(r2, [r0, 4])
    str(r3, [r0, 8])
    str(r7, [r0, 28])
    mov(r0, 0)  # the return value: a small int (an address in r0 could need a heap int)
"""

try:
    exec(_SOURCE)  # defines fast16 here
except Exception:
    fast16 = None
del _SOURCE
