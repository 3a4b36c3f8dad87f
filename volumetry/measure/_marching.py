"""Marching cubes (Lewiner et al., scikit-image's ``method="lewiner"``) of a binary mask, compiled.

On a mask of 0 and 1 at the level 0.5 every corner of a cube is 0.5 away from the level, so
scikit-image's face and interior tests, and with them the triangles it emits, depend on nothing
but the cube's 8-bit case index; and every vertex it makes is the mid-point of a cube edge (or,
for some cases, the cube's centre). :data:`TRIANGLES` holds those triangles for each index, read
from scikit-image itself (``tests/test_measure_marching.py`` derives the table again from the
installed scikit-image and compares). :func:`lewiner_binary` walks the cubes in scikit-image's
order (``z``, then ``y``, then ``x``), numbers each vertex when a triangle first uses it (one
vertex per edge, shared as scikit-image's face layers share them) and computes its position with
scikit-image's floating-point operations; so its vertices, faces and their order are exactly those
of ``skimage.measure.marching_cubes(padded, 0.5, method="lewiner")``, without its Python wrapper,
its float32 copy of the mask, its normals and its per-vertex values.
"""
from __future__ import annotations

import numpy as np

from .._jit import kernel

#: Triangles scikit-image's Lewiner marching cubes emits for each case index of a binary cube, in
#: its order: three hexadecimal edge numbers per triangle, in the order scikit-image adds their
#: vertices (its faces are these reversed). Edges 0-3 are the bottom face's (``z``), 4-7 the top
#: face's, 8-11 the vertical ones, 12 is the cube's centre (scikit-image's numbering). The index
#: has bit ``b`` set when corner ``b`` of :data:`CORNERS` is in the mask.
TRIANGLES = (
    '', '083', '019', '183981', '12a', 'a32a83a108a0', '92a029', '2832a8a98', '3b2', '0b28b0',
    'b03b90b219b1', '1b219b98b', '3a1ba3', '0a108a8ba', '3903b9ba9', '98aa8b', '478', '430734',
    '794719780170', '419471731', '12a847', '41014a7a4a72327', '280827a727a494a', '2a9297273794',
    '27b247238428', 'b47b24204', '87b784948098901310132b238b3', '47b94b9b2921', '38141814a7a4a7b',
    '1ba14b1047b4', '038b474b9a9b', '47b4b99ba', '954', '348354309539', '054150', '854835315',
    '4a542a491241', '948495a591a9a12021203830980', '52a542402', '2a5325354348', '95423b',
    '09252925b4b5b48', '52125b4b5b43034', '21525828b485', '391934b434b5a5b', '10985458aba8',
    '54050b5bab03', '54858aa8b', '978579', '930953573', '078017157', '153357', '7a5a72827281918',
    '1092a353a357', '802825857a52', '2a5253357', '7b525b529392938', '95797292027b', '8031b2b17571',
    'b21b17715', '7a5a7b918381', '7c579c970b070b1c1bbacca591c', '7c5c8505850a3a0a3ccba7bcc38',
    'ba57b5', 'a65', '0835a6', '61a601906965', '1a363a368586859', '165261', '632368586850105',
    '965906026', '598582526328', '5b653b5a2352', '0a2a05850586b68', 'a595a6b6a2bab23132310901a91',
    '21a96569b8b9', '63b653513', '08b0b50515b6', '3b6036065059', '65969bb98', '8678a6845a85',
    '450a050a363a367', '80919091a9a565a564746478489', '9457a6a71317', '672827281418145',
    '327672410145', '459786068602', '3c734c439293925c5226cc6745c', 'a2b3b2b38b8747874656465a6ab',
    '67b5a424a420', '67ba21038459', 'a21b67945', 'b67584853135', '1c516c61b0b1b07c7004cc4567c',
    '803945b67', '594b67', 'a4964a', '48636863a0a3a09', 'a01a60640', '83181686461a', '149124264',
    '910283824642', '024426', '832824426', '4b6b43934392a29', 'a090a2486b68', '21a3b060b064',
    '4c64aca41814182c288bccb6a2c', '964936913b63', '4c6c9616961b0b1b0cc8b48cc09', '3b6360064',
    '648b68', '7a678a89a', '0730a709a67a', 'a671a7178180', 'a67a71173', '126168189867',
    '3c7c0797079616961cc2632cc10', '780706602', '732672', 'b6723a8a3a89', '0c20bcb07970796c699acca2b6c',
    '67b03821a', '21a7b6', '3c1cb161b16979697cc8938cc7b', '91067b', '80367b', '7b6', '76b',
    '6876086b3063', '019b76', '1b3b16961697879', '72b71276a17a', 'b6a6b787b38b830203021a12ba2',
    '2b070b07969796a', '32ba767a898a', '723627', '708760620', '703079697961216', '162186198876',
    'a76a17137', 'a7617a187108', '03707a0a96a7', '76a7a88a9', '684b86', '36b306046', '694961b161b080b',
    '946963931b36', '6a414a41828182b', 'b320a1a06460', '80b2b069496a', '6c4cb434b43929392cca96acc2b',
    '823842462', '042462', '038192429246', '194142246', '8138618466a1', 'a10a06604', '6c468c863a363a0c0aa9cc9480c',
    'a946a4', 'b56b95b749b4', 'b3808380989454945767576b7b8', '561b161b070b074', '7486b535b531',
    '91a2a1a2bab676b67545754959a', '748b3210956a', 'a564b7b42024', 'b32874a56', '743934392529256',
    '874695960206', '521256034743', '2c627c728182814c4115cc5674c', '56a497179713', '910a56874',
    '0c405c50a3a0a36c6337cc7456c', '6a5874', '6956b9b89', '36b063056095', '0b805b01556b',
    '6b3635531', 'a56129b929b8', '56a32b109', '2c0ca050a05868586ccb82bcc6a', 'b3256a',
    '589528562382', '956960062', '2c6c3686368505850cc1521cc03', '156216', '3c13aca36863685c5889cc91a5c',
    '1096a5', '3806a5', 'a56', 'b5a75b', '587850a050a3b3a', '59707970b1b0b1a', '597879b1a1b3',
    'b12b71751', '32b081718175', '9759279022b7', '5c75bcb52925293c3998cc87b3c', '25a235375',
    '820852875a25', 'a21390935753', '5c7ca727a72818281cc9859cc1a', '135375', '087071175',
    '903935537', '987597', '5845a8ab8', '5045b05abb30', '945018a818ab', '1c3c9343934b5b4b5ccab1acc59',
    '2512852b8458', '1c5c25b525b434b43cc0410cc32', '2c029c925b525b4c4bb8cc8094c', '459b32',
    '25a352345384', '5a2524420', '45921a038', 'a21459', '845853351', '045105', '459380',
    '945', '4b749b9ab', '87430b9b0b9a', '1ab1b414074b', '1c318c814a414a7c7aabccb387c',
    '4b79b492b912', '74810932b', 'b74b42240', '7482b3', '29a279237749', '0c2c8272827a4a7a4cc9a09cc48',
    '0c4c14a414a727a72cc3703cc21', 'a21748', '491417713', '910748', '403743', '487', '9a8ab8',
    '30939bb9a', '01a0a88ab', '31ab3a', '12b1b99b8', '091b32', '02b80b', '32b', '23828aa89',
    '9a2092', '380a21', '1a2', '138918', '091', '038', '',
)

#: Corner ``b`` of a cube (``x, y, z`` offsets) is bit ``b`` of its case index.
CORNERS = ((0, 0, 0), (1, 0, 0), (1, 1, 0), (0, 1, 0), (0, 0, 1), (1, 0, 1), (1, 1, 1), (0, 1, 1))

_CORNER_XYZ = np.array(CORNERS, dtype=np.float64)

#: Per edge number: face layer of its vertex (0 the cube's bottom ``z``, 1 its top), ``x`` and ``y``
#: offset of the cube that owns the vertex in that layer and slot of the vertex there
#: (scikit-image's ``get_index_in_facelayer``), then twice the vertex's ``x, y, z`` offset in the cube.
EDGES = np.array([
    [0, 0, 0, 0, 1, 0, 0], [0, 1, 0, 1, 2, 1, 0], [0, 0, 1, 0, 1, 2, 0], [0, 0, 0, 1, 0, 1, 0],
    [1, 0, 0, 0, 1, 0, 2], [1, 1, 0, 1, 2, 1, 2], [1, 0, 1, 0, 1, 2, 2], [1, 0, 0, 1, 0, 1, 2],
    [0, 0, 0, 2, 0, 0, 1], [0, 1, 0, 2, 2, 0, 1], [0, 1, 1, 2, 2, 2, 1], [0, 0, 1, 2, 0, 2, 1],
    [0, 0, 0, 3, 1, 1, 1]], dtype=np.int64)


def _triangle_table(triangles=TRIANGLES) -> np.ndarray:
    """:data:`TRIANGLES` as an array: per case index, the number of triangles, then their edges."""
    width = 1 + max(len(s) for s in triangles)
    out = np.zeros((256, width), dtype=np.int64)
    for index, s in enumerate(triangles):
        out[index, 0] = len(s) // 3
        out[index, 1:1 + len(s)] = [int(ch, 16) for ch in s]
    return out


#: :func:`_triangle_table` of :data:`TRIANGLES`, what :func:`lewiner_binary` takes.
TRIANGLE_TABLE = _triangle_table()


def _warm() -> tuple:
    crop = np.zeros((2, 3, 3), dtype=bool)
    crop[0, 1:, :2] = True
    crop[1, 0, 0] = True
    return crop, TRIANGLE_TABLE, EDGES


@kernel(warm=_warm)
def lewiner_binary(crop, table, edges):
    """Marching-cubes surface at 0.5 of a binary mask padded by one voxel of background.

    Parameters
    ----------
    crop : numpy.ndarray of bool
        ``[z, y, x]`` (``[k, j, i]``) mask, C-contiguous; it is padded here by one voxel of
        background on every side, as :func:`volumetry.measure.mesh.surface` pads it.
    table : numpy.ndarray of int64
        :data:`TRIANGLE_TABLE`.
    edges : numpy.ndarray of int64
        :data:`EDGES`.

    Returns
    -------
    xyz : numpy.ndarray of float32
        ``(n, 3)`` vertices, ``x, y, z`` index of the padded mask (scikit-image's vertices before
        it flips them to ``z, y, x``).
    faces : numpy.ndarray of int32
        ``(m, 3)`` vertex numbers, scikit-image's faces (oriented as its ``"descent"``).
    lattice : numpy.ndarray of int64
        ``(n, 3)``: ``rint(2 [z, y, x])`` of each vertex, exact (every vertex is a mid-point of
        an edge or a cube's centre).
    """
    nk, nj, ni = crop.shape
    nz, ny, nx = nk + 2, nj + 2, ni + 2
    pad = np.zeros((nz, ny, nx), dtype=np.uint8)
    for k in range(nk):
        for j in range(nj):
            for i in range(ni):
                pad[k + 1, j + 1, i + 1] = crop[k, j, i]
    # case index of every cube (bit b: corner b of CORNERS), and the number of triangles
    index = np.empty((nz - 1, ny - 1, nx - 1), dtype=np.uint8)
    n_tri = 0
    for z in range(nz - 1):
        for y in range(ny - 1):
            for x in range(nx - 1):
                c = (pad[z, y, x] | (pad[z, y, x + 1] << 1) | (pad[z, y + 1, x + 1] << 2)
                     | (pad[z, y + 1, x] << 3) | (pad[z + 1, y, x] << 4) | (pad[z + 1, y, x + 1] << 5)
                     | (pad[z + 1, y + 1, x + 1] << 6) | (pad[z + 1, y + 1, x] << 7))
                index[z, y, x] = c
                n_tri += table[c, 0]
    faces = np.empty((n_tri, 3), dtype=np.int32)
    xyz = np.empty((3 * n_tri, 3), dtype=np.float32)
    lattice = np.empty((3 * n_tri, 3), dtype=np.int64)
    # vertex offsets in a cube, as scikit-image interpolates them: every corner has the strength
    # s = 1 / (eps + |0.5|); an edge's mid-point is (0 s + 1 s) / (s + s), the centre the weighted
    # mean of the 8 corners in its order of terms (0.4999999999999999, not 0.5, in float64)
    s = 1.0 / (np.spacing(1.0) + 0.5)
    half = (0.0 * s + 1.0 * s) / (s + s)
    fx = fy = fz = ff = 0.0
    for b in range(8):
        fx += _CORNER_XYZ[b, 0] * s
        fy += _CORNER_XYZ[b, 1] * s
        fz += _CORNER_XYZ[b, 2] * s
        ff += s
    cx, cy, cz = 1.0 * fx / ff, 1.0 * fy / ff, 1.0 * fz / ff
    # vertex numbers by face layer (bottom and top of the current z) and slot, as scikit-image keeps
    # them: edge e of the cube at (x, y) has slot 4 (nx y + x) + offset[e] in its layer
    size = ny * nx * 4
    layers = np.full(2 * size, -1, dtype=np.int32)
    offset = np.empty(13, dtype=np.int64)
    for e in range(13):
        offset[e] = 4 * (nx * edges[e, 2] + edges[e, 1]) + edges[e, 3]
    bottom = size
    two = np.float32(2.0)
    nv = 0
    nf = 0
    for z in range(nz - 1):
        bottom = size - bottom  # the former top layer is the new bottom one; the new top one is cleared
        top = size - bottom
        layers[top:top + size] = -1
        for y in range(ny - 1):
            for x in range(nx - 1):
                c = index[z, y, x]
                n = table[c, 0]
                if n == 0:
                    continue
                cell = 4 * (nx * y + x)
                for t in range(n):
                    for v in range(3):
                        e = table[c, 1 + 3 * t + v]
                        slot = (top if edges[e, 0] else bottom) + cell + offset[e]
                        vid = layers[slot]
                        if vid < 0:
                            vid = nv
                            layers[slot] = vid
                            if e == 12:
                                px, py, pz = np.float32(x + cx), np.float32(y + cy), np.float32(z + cz)
                            else:
                                px = np.float32(x + edges[e, 4] * half)
                                py = np.float32(y + edges[e, 5] * half)
                                pz = np.float32(z + edges[e, 6] * half)
                            lattice[nv, 0] = np.int64(np.rint(pz * two))
                            lattice[nv, 1] = np.int64(np.rint(py * two))
                            lattice[nv, 2] = np.int64(np.rint(px * two))
                            xyz[nv, 0], xyz[nv, 1], xyz[nv, 2] = px, py, pz
                            nv += 1
                        faces[nf, 2 - v] = vid  # scikit-image's faces are the added order reversed
                    nf += 1
    return xyz[:nv], faces, lattice[:nv]
